// Assignments: for one app, its mobileAppAssignments (groups and the "all" targets, with their
// intents and licensing) and every licence Apple holds for it, per user and per device.
// The assignments are issue 15's routes: a vppd that does not serve them yet says so here.
import { useEffect, useMemo, useState } from 'preact/hooks';
import { AppAssignment, AssignedLicense, Graph, GraphError, MobileApp, UNLIMITED } from '../graph';

const kShownHolders = 200;

const kTargets: Record<string, string> = {
  '#microsoft.graph.groupAssignmentTarget': 'Group',
  '#microsoft.graph.exclusionGroupAssignmentTarget': 'Group (excluded)',
  '#microsoft.graph.allDevicesAssignmentTarget': 'All devices',
  '#microsoft.graph.allLicensedUsersAssignmentTarget': 'All users',
};

function platform(app: MobileApp): string {
  return app['@odata.type'] === '#microsoft.graph.macOsVppApp' ? 'macOS' : 'iOS';
}

// The route is not there: Graph's "Resource not found for the segment" (400) or a 404/501.
function notServed(e: unknown): boolean {
  return e instanceof GraphError && (e.status === 400 || e.status === 404 || e.status === 501);
}

export function AssignmentsPage({ graph }: { graph: Graph }) {
  const [apps, setApps] = useState<MobileApp[] | null>(null);
  const [appId, setAppId] = useState('');
  const [assignments, setAssignments] = useState<AppAssignment[] | null | 'unavailable'>(null);
  const [licences, setLicences] = useState<AssignedLicense[] | null>(null);
  const [filter, setFilter] = useState('');
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    graph
      .apps()
      .then((list) => {
        list.sort((a, b) => a.displayName.localeCompare(b.displayName) || platform(a).localeCompare(platform(b)));
        setApps(list);
        const busiest = [...list].sort((a, b) => (b.usedLicenseCount ?? 0) - (a.usedLicenseCount ?? 0))[0];
        if (busiest) setAppId(busiest.id);
      })
      .catch((e: Error) => setError(e.message));
  }, [graph]);

  const app = apps?.find((a) => a.id === appId);
  useEffect(() => {
    if (!app) return;
    let current = true;
    setAssignments(null);
    setLicences(null);
    graph
      .appAssignments(app.id)
      .then((list) => current && setAssignments(list))
      .catch((e) => current && (notServed(e) ? setAssignments('unavailable') : setError((e as Error).message)));
    graph
      .assignedLicenses(app)
      .then((list) => current && setLicences(list))
      .catch((e: Error) => current && setError(e.message));
    return () => {
      current = false;
    };
  }, [graph, app]);

  const holders = useMemo(() => {
    const needle = filter.trim().toLowerCase();
    return (licences ?? []).filter(
      (l) => !needle || (l.userId ?? '').toLowerCase().includes(needle) || (l.deviceName ?? '').toLowerCase().includes(needle),
    );
  }, [licences, filter]);
  const devices = (licences ?? []).filter((l) => l.deviceName).length;

  return (
    <>
      {error && (
        <p role="alert" class="error">
          {error}
        </p>
      )}
      <form class="filters" onSubmit={(e) => e.preventDefault()} aria-label="Choose an app">
        <label>
          App
          <select value={appId} onChange={(e) => setAppId(e.currentTarget.value)} disabled={!apps}>
            {(apps ?? []).map((a) => (
              <option key={a.id} value={a.id}>
                {a.displayName} ({platform(a)})
              </option>
            ))}
          </select>
        </label>
      </form>
      {app && (
        <p class="summary">
          {app.bundleId} · {app.usedLicenseCount ?? 0} in use of{' '}
          {(app.totalLicenseCount ?? 0) >= UNLIMITED ? 'unlimited' : (app.totalLicenseCount ?? 0)}
        </p>
      )}

      <section aria-labelledby="assign-h" class="card">
        <h2 id="assign-h">Assignments</h2>
        {assignments === null && <p>Loading…</p>}
        {assignments === 'unavailable' && (
          <p data-testid="assignments-unavailable">
            This vppd does not serve app assignments (<code>mobileApps/&#123;id&#125;/assignments</code>, issue 15)
            yet; the licences below are what Apple holds.
          </p>
        )}
        {Array.isArray(assignments) && assignments.length === 0 && <p>No assignments: no one is meant to get it.</p>}
        {Array.isArray(assignments) && assignments.length > 0 && (
          <div class="table-wrap">
            <table class="assignments">
              <caption class="visually-hidden">Assignments of {app?.displayName}</caption>
              <thead>
                <tr>
                  <th scope="col">Target</th>
                  <th scope="col">Group</th>
                  <th scope="col">Intent</th>
                  <th scope="col">Licensing</th>
                </tr>
              </thead>
              <tbody>
                {assignments.map((a) => (
                  <tr key={a.id} data-assignment-id={a.id}>
                    <th scope="row" data-label="Target">
                      {kTargets[a.target['@odata.type']] ?? a.target['@odata.type']}
                    </th>
                    <td data-label="Group">
                      <code>{a.target.groupId ?? '—'}</code>
                    </td>
                    <td data-label="Intent">{a.intent}</td>
                    <td data-label="Licensing">{a.settings?.useDeviceLicensing ? 'per device' : 'per user'}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>

      <section aria-labelledby="held-h" class="card">
        <h2 id="held-h">Licences held</h2>
        {licences === null ? (
          <p>Loading…</p>
        ) : (
          <>
            <p class="summary" aria-live="polite">
              {licences.length} licences: {licences.length - devices} users, {devices} devices
              {holders.length > kShownHolders ? ` · showing ${kShownHolders} of ${holders.length}` : ''}
            </p>
            <label class="filters">
              Filter by user or serial number
              <input type="search" value={filter} onInput={(e) => setFilter(e.currentTarget.value)} />
            </label>
            <div class="table-wrap">
              <table class="holders">
                <caption class="visually-hidden">Licences Apple holds for {app?.displayName}</caption>
                <thead>
                  <tr>
                    <th scope="col">Holder</th>
                    <th scope="col">Kind</th>
                  </tr>
                </thead>
                <tbody>
                  {holders.slice(0, kShownHolders).map((l) => (
                    <tr key={l.id} data-licence-id={l.id}>
                      <th scope="row" data-label="Holder">
                        <code>{l.deviceName || l.userId}</code>
                      </th>
                      <td data-label="Kind">{l.deviceName ? 'device (serial number)' : 'user (clientUserId)'}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          </>
        )}
        <p class="hint">
          Failed licence assignments and their reasons are not part of Graph's answers yet; <code>vppd tokens list</code>{' '}
          shows a token's last error.
        </p>
      </section>
    </>
  );
}
