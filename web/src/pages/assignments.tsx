// Assignments: for one app, its mobileAppAssignments (groups, by name when the console may
// read them, and the "all" targets, with their intents and licensing), where the licence of
// each device and each person they target stands (deviceStatuses, userStatuses with vppd's
// vppUserStatus: granted, waiting for Apple's invitation, pending at Apple, or failed with
// Apple's reason), and every licence Apple holds for it, per user and per device. A vppd that
// does not serve the assignment routes says so here.
import { useEffect, useMemo, useState } from 'preact/hooks';
import {
  AppAssignment,
  AssignedLicense,
  DeviceStatus,
  Graph,
  GraphError,
  MobileApp,
  UNLIMITED,
  UserStatus,
  VppUserLocation,
  VppUserStatus,
} from '../graph';

const kShownHolders = 200;

const kStates: Record<string, string> = {
  installed: 'Licence granted',
  pendingInstall: 'Pending at Apple',
  failed: 'Failed',
  unknown: 'Not yet handed out',
};

const kStateBadge: Record<string, string> = { installed: 'ok', pendingInstall: 'warn', failed: 'bad' };

// Apple's error numbers a failed licence or a refused person carries (Apple's Apps and Books API).
const kAppleErrors: Record<number, string> = {
  9709: 'not enough licences: granted when licences are bought or freed',
  9717: "the email address is not valid: correct the user's mail or userPrincipalName",
  9641: 'the Apple Account is already associated with another user',
  9610: 'licence not found',
  9616: 'licence already assigned',
  9624: 'licence refunded',
  9628: 'licence not eligible for device assignment',
  9707: 'the asset cannot be licensed to devices',
};

// What Apple's error number means; Apple's own message when the table does not know it.
function failureReason(code: number, message?: string | null): string {
  if (kAppleErrors[code]) return `${kAppleErrors[code]} (Apple ${code})`;
  if (message) return code ? `${message} (Apple ${code})` : message;
  return code ? `Apple error ${code}` : 'no reason given';
}

// Where a person's licence stands. Graph's userStatuses only counts it as a device
// (installed, failed, not installed); vppd's vppUserStatus tells waiting for the invitation
// from pending at Apple, and gives the reason of a failure. Without it (the console may not
// read users), a licence not granted is only that.
type PersonState = 'granted' | 'invited' | 'pending' | 'failed' | 'unknown' | 'notGranted';

const kPersonStates: Record<PersonState, string> = {
  granted: 'Licence granted',
  invited: 'Waiting for the invitation',
  pending: 'Pending at Apple',
  failed: 'Failed',
  unknown: 'Not yet handed out',
  notGranted: 'Not granted yet',
};

const kPersonBadge: Record<PersonState, string> = {
  granted: 'ok',
  invited: 'warn',
  pending: 'warn',
  failed: 'bad',
  unknown: 'neutral',
  notGranted: 'neutral',
};

interface PersonLicence {
  state: PersonState;
  reason?: string;
  where?: VppUserLocation; // the person at the app's location, when read
}

// The app's adamId: Graph has no property for it, its appStoreUrl ends in /id<adamId>.
function adamIdOf(app: MobileApp): string | undefined {
  return /\/id(\d+)$/.exec(app.appStoreUrl ?? '')?.[1];
}

// `detail` is the person's vppUserStatus, 'unread' when it was not (or could not be) read.
function personLicence(s: UserStatus, detail: VppUserStatus | 'unread', app: MobileApp): PersonLicence {
  const granted = s.installedDeviceCount > 0;
  if (detail === 'unread') {
    if (granted) return { state: 'granted' };
    return { state: s.failedDeviceCount > 0 ? 'failed' : 'notGranted' };
  }
  const where = detail.locations.find((l) => l.vppTokenId === app.vppTokenId);
  if (!where) return granted ? { state: 'granted' } : { state: 'unknown', reason: 'not registered at Apple yet' };
  if (where.status === 'failed') {
    return {
      state: 'failed',
      reason: `Apple refused the person: ${failureReason(Number(where.errorCode), where.errorMessage)}`,
      where,
    };
  }
  const adamId = adamIdOf(app);
  const licence = where.licenses.find((l) => l.adamId === adamId);
  switch (licence?.state) {
    case 'granted':
    case 'reclaimPending': // still held until Apple completes the disassociate
      return { state: 'granted', where };
    case 'failed':
      return { state: 'failed', reason: failureReason(Number(licence.errorCode), licence.errorMessage), where };
    case 'pending':
      return { state: 'pending', reason: 'the licence is being associated', where };
  }
  if (granted) return { state: 'granted', where };
  switch (where.status) {
    case 'Registered':
      return { state: 'invited', reason: `not accepted yet${where.email ? `, registered as ${where.email}` : ''}`, where };
    case 'creating':
      return { state: 'pending', reason: 'being registered', where };
    case 'Associated':
      return { state: 'unknown', reason: 'invitation accepted', where };
    default:
      return { state: 'unknown', reason: `Apple user ${where.status}`, where };
  }
}

// Runs `work` on each item, at most `limit` at a time; stops taking items once one returns false.
async function eachLimited<T>(items: T[], limit: number, work: (item: T) => Promise<boolean>): Promise<void> {
  let next = 0;
  let go = true;
  const worker = async () => {
    while (go && next < items.length) go = (await work(items[next++])) && go;
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
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
  const [people, setPeople] = useState<UserStatus[] | null | 'unavailable'>(null);
  // Each person's vppUserStatus, read for the people shown whose licence is not granted;
  // null while reading, false when the console may not read users (403).
  const [details, setDetails] = useState<Map<string, VppUserStatus> | null | false>(null);
  // Group names by id, once read; a group the console may not read (403) or that is gone
  // (404) is absent and shown by its id. False when groups may not be read at all.
  const [groupNames, setGroupNames] = useState<Map<string, string> | false>(new Map());
  const [round, setRound] = useState(0); // Refresh reads the app's assignments and states again
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
    setPeople(null);
    setDetails(null);
    graph
      .appAssignments(app.id)
      .then((list) => current && setAssignments(list))
      .catch((e) => current && (notServed(e) ? setAssignments('unavailable') : setError((e as Error).message)));
    graph
      .deviceStatuses(app.id)
      .then((list) => current && setStatuses(list))
      .catch((e) => current && (notServed(e) ? setStatuses('unavailable') : setError((e as Error).message)));
    graph
      .userStatuses(app.id)
      .then((list) => current && setPeople(list))
      .catch((e) => current && (notServed(e) ? setPeople('unavailable') : setError((e as Error).message)));
    graph
      .assignedLicenses(app)
      .then((list) => current && setLicences(list))
      .catch((e: Error) => current && setError(e.message));
    return () => {
      current = false;
    };
  }, [graph, app, round]);

  // One read per distinct group. Groups are all readable or none (Group.Read.All or the
  // directory's scopes), so the first 403 ends the reads.
  useEffect(() => {
    if (!Array.isArray(assignments)) return;
    let current = true;
    const ids = [...new Set(assignments.map((a) => a.target.groupId).filter((id): id is string => !!id))];
    (async (): Promise<Map<string, string> | false> => {
      const names = new Map<string, string>();
      for (const id of ids) {
        try {
          const group = await graph.group(id);
          if (group.displayName) names.set(id, group.displayName);
        } catch (e) {
          if (e instanceof GraphError && e.status === 403) return false;
          if (!(e instanceof GraphError && e.status === 404)) throw e; // 404: deleted since
        }
      }
      return names;
    })()
      .then((names) => current && setGroupNames(names))
      .catch((e: Error) => current && setError(e.message));
    return () => {
      current = false;
    };
  }, [graph, assignments]);

  // vppUserStatus for each person shown whose licence is not granted (a granted one needs
  // no more), four at a time; the first 403 ends the reads, as for groups.
  useEffect(() => {
    setDetails(null);
    if (!Array.isArray(people)) return;
    let current = true;
    const waiting = people.slice(0, kShownHolders).filter((p) => p.installedDeviceCount === 0);
    const read = new Map<string, VppUserStatus>();
    let refused = false;
    eachLimited(waiting, 4, async (p) => {
      try {
        read.set(p.id, await graph.vppUserStatus(p.id));
      } catch (e) {
        if (e instanceof GraphError && e.status === 403) {
          refused = true;
          return false;
        }
        if (!(e instanceof GraphError && e.status === 404)) throw e; // 404: deleted since
      }
      return current;
    })
      .then(() => current && setDetails(refused ? false : read))
      .catch((e: Error) => current && setError(e.message));
    return () => {
      current = false;
    };
  }, [graph, people]);

  const personLicences = useMemo(() => {
    if (!Array.isArray(people) || !app || details === null) return null;
    return people.map((p) => personLicence(p, (details && details.get(p.id)) || 'unread', app));
  }, [people, details, app]);
  const byPersonState = useMemo(() => {
    const counts: Partial<Record<PersonState, number>> = {};
    for (const l of personLicences ?? []) counts[l.state] = (counts[l.state] ?? 0) + 1;
    return counts;
  }, [personLicences]);

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
        <button type="button" onClick={() => setRound((r) => r + 1)} disabled={!app}>
          Refresh
        </button>
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
                    <td data-label="Group" data-group-id={a.target.groupId}>
                      {!a.target.groupId ? (
                        '—'
                      ) : groupNames && groupNames.has(a.target.groupId) ? (
                        <span title={a.target.groupId}>{groupNames.get(a.target.groupId)}</span>
                      ) : (
                        <code>{a.target.groupId}</code>
                      )}
                    </td>
                    <td data-label="Intent">{a.intent}</td>
                    <td data-label="Licensing">{a.settings?.useDeviceLicensing ? 'per device' : 'per user'}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
        {groupNames === false && (
          <p class="hint">Groups are shown by id: reading their names needs Group.Read.All.</p>
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

      <section aria-labelledby="people-h" class="card">
        <h2 id="people-h">People targeted</h2>
        {(people === null || (Array.isArray(people) && !personLicences)) && <p>Loading…</p>}
        {people === 'unavailable' && <p>This vppd does not serve userStatuses yet.</p>}
        {Array.isArray(people) && people.length === 0 && (
          <p>No person is targeted: no assignment with licensing per user reaches a directory user.</p>
        )}
        {Array.isArray(people) && people.length > 0 && personLicences && (
          <>
            <p class="summary" aria-live="polite" data-testid="people-states">
              {people.length} {people.length === 1 ? 'person' : 'people'}:{' '}
              {(Object.keys(kPersonStates) as PersonState[])
                .filter((k) => byPersonState[k])
                .map((k) => `${byPersonState[k]} ${kPersonStates[k].toLowerCase()}`)
                .join(', ')}
              {people.length > kShownHolders ? ` · showing ${kShownHolders}` : ''}
            </p>
            <div class="table-wrap">
              <table class="people">
                <caption class="visually-hidden">Where each targeted person's licence of {app?.displayName} stands</caption>
                <thead>
                  <tr>
                    <th scope="col">Person</th>
                    <th scope="col">Licence</th>
                    <th scope="col">Reason</th>
                  </tr>
                </thead>
                <tbody>
                  {people.slice(0, kShownHolders).map((p, i) => {
                    const l = personLicences[i];
                    // Apple's invitation, to pass on to the person; an https link only.
                    const invite = l.state === 'invited' && l.where?.inviteUrl?.startsWith('https://');
                    return (
                      <tr key={p.id} data-user-id={p.id} data-state={l.state}>
                        <th scope="row" data-label="Person">
                          {p.userPrincipalName ?? <code>{p.id}</code>}
                          {p.userName && <small> {p.userName}</small>}
                        </th>
                        <td data-label="Licence">
                          <span class={`badge ${kPersonBadge[l.state]}`}>{kPersonStates[l.state]}</span>
                        </td>
                        <td data-label="Reason">
                          {l.reason ?? '—'}
                          {invite && (
                            <>
                              {' · '}
                              <a href={l.where?.inviteUrl ?? undefined} rel="noreferrer" target="_blank">
                                Apple's invitation
                              </a>
                            </>
                          )}
                        </td>
                      </tr>
                    );
                  })}
                </tbody>
              </table>
            </div>
            {details === false && (
              <p class="hint">
                Reading users (User.Read.All) would tell a person waiting for Apple's invitation from one pending at
                Apple, and why a licence failed (vppd's <code>users/&#123;id&#125;/vppUserStatus</code>).
              </p>
            )}
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
