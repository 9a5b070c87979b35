// Assignments: for one app, its mobileAppAssignments (groups and the "all" targets, with their
// intents and licensing), where the licence of each device they target stands (deviceStatuses:
// granted, pending at Apple, or failed with Apple's reason), and every licence Apple holds for
// it, per user and per device. A vppd that does not serve the assignment routes says so here.
import { useEffect, useMemo, useState } from 'preact/hooks';
import { AppAssignment, AssignedLicense, DeviceStatus, Graph, GraphError, MobileApp, UNLIMITED } from '../graph';

const kShownHolders = 200;

const kStates: Record<string, string> = {
  installed: 'Licence granted',
  pendingInstall: 'Pending at Apple',
  failed: 'Failed',
  unknown: 'Not yet handed out',
};

const kStateBadge: Record<string, string> = { installed: 'ok', pendingInstall: 'warn', failed: 'bad' };

// Apple's error numbers a failed device licence carries (Apple's Apps and Books API).
const kAppleErrors: Record<number, string> = {
  9709: 'not enough licences: granted when licences are bought or freed',
  9610: 'licence not found',
  9616: 'licence already assigned',
  9624: 'licence refunded',
  9628: 'licence not eligible for device assignment',
  9707: 'the asset cannot be licensed to devices',
};

function failureReason(code: number): string {
  return kAppleErrors[code] ? `${kAppleErrors[code]} (Apple ${code})` : `Apple error ${code}`;
}

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
  const [statuses, setStatuses] = useState<DeviceStatus[] | null | 'unavailable'>(null);
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
    setStatuses(null);
    graph
      .appAssignments(app.id)
      .then((list) => current && setAssignments(list))
      .catch((e) => current && (notServed(e) ? setAssignments('unavailable') : setError((e as Error).message)));
    graph
      .deviceStatuses(app.id)
      .then((list) => current && setStatuses(list))
      .catch((e) => current && (notServed(e) ? setStatuses('unavailable') : setError((e as Error).message)));
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
  const byState = useMemo(() => {
    const counts: Record<string, number> = {};
    for (const s of Array.isArray(statuses) ? statuses : []) counts[s.installState] = (counts[s.installState] ?? 0) + 1;
    return counts;
  }, [statuses]);

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

      <section aria-labelledby="devices-h" class="card">
        <h2 id="devices-h">Devices targeted</h2>
        {statuses === null && <p>Loading…</p>}
        {statuses === 'unavailable' && <p>This vppd does not serve deviceStatuses yet.</p>}
        {Array.isArray(statuses) && statuses.length === 0 && (
          <p>No device is targeted: no assignment with licensing per device reaches a managed device.</p>
        )}
        {Array.isArray(statuses) && statuses.length > 0 && (
          <>
            <p class="summary" aria-live="polite" data-testid="device-states">
              {statuses.length} devices:{' '}
              {Object.keys(kStates)
                .filter((k) => byState[k])
                .map((k) => `${byState[k]} ${kStates[k].toLowerCase()}`)
                .join(', ')}
            </p>
            <div class="table-wrap">
              <table class="statuses">
                <caption class="visually-hidden">Where each targeted device's licence of {app?.displayName} stands</caption>
                <thead>
                  <tr>
                    <th scope="col">Device</th>
                    <th scope="col">Licence</th>
                    <th scope="col">Reason</th>
                  </tr>
                </thead>
                <tbody>
                  {statuses.slice(0, kShownHolders).map((s) => (
                    <tr key={s.id} data-device-id={s.id} data-state={s.installState}>
                      <th scope="row" data-label="Device">
                        {s.deviceName ?? <code>{s.id}</code>}
                      </th>
                      <td data-label="Licence">
                        <span class={`badge ${kStateBadge[s.installState] ?? 'neutral'}`}>
                          {kStates[s.installState] ?? s.installState}
                        </span>
                      </td>
                      <td data-label="Reason">{s.installState === 'failed' ? failureReason(s.errorCode) : '—'}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          </>
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
                      <td data-label="Kind">
                        {l.deviceName ? (l.managedDeviceId ? 'device (managed)' : 'device (serial number)') : 'user (clientUserId)'}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          </>
        )}
        <p class="hint">
          Apple's view at the last sync; the Licences page lists the licences Apple holds that vppd did not hand out
          (untracked), and <code>vppd tokens list</code> shows the last reconciliation.
        </p>
      </section>
    </>
  );
}
