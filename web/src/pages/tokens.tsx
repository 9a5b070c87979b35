// Tokens: every vppToken of the tenant with its state, expiry countdown, last sync and
// failure reason; Sync with live progress; add, renew and delete.
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { daysUntil, formatDate, relative, stateInfo } from '../format';
import { ActionResult, Graph, isNever, sTokenFromFile, VppToken } from '../graph';

const kExpirySoonDays = 30;
const kPollMs = 500;
const kSyncTimeoutMs = 10 * 60 * 1000;

export function tokenName(t: VppToken): string {
  return t.displayName || t.organizationName || t.locationName || t.id;
}

// The latest entry of an action in tokenActionResults, which keeps a history (oldest first)
// with several entries per action name.
function latestEntry(t: VppToken, actionName: string): ActionResult | undefined {
  let latest: ActionResult | undefined;
  for (const r of t.tokenActionResults) {
    if (r.actionName === actionName && (!latest || r.startDateTime >= latest.startDateTime)) latest = r;
  }
  return latest;
}

// The token's latest syncLicenses entry: the worker's progress, as Graph shows it.
function syncEntry(t: VppToken) {
  return latestEntry(t, 'syncLicenses');
}

function syncRunning(t: VppToken): boolean {
  const entry = syncEntry(t);
  return t.lastSyncStatus === 'inProgress' || entry?.actionState === 'pending' || entry?.actionState === 'active';
}

// Why the last sync failed, or why the token cannot sync, in words; '' when all is well.
function failureReason(t: VppToken): string {
  const info = stateInfo(t.state);
  const parts: string[] = [];
  if (t.lastSyncStatus === 'failed') parts.push('The last sync failed.');
  const names = new Set(t.tokenActionResults.map((r) => r.actionName));
  for (const name of names) {
    const last = latestEntry(t, name);
    if (last?.actionState === 'failed' && last.actionFailureReason && last.actionFailureReason !== 'none')
      parts.push(`${name}: ${last.actionFailureReason}.`);
  }
  if (t.state !== 'valid' && info.advice) parts.push(info.advice);
  return parts.join(' ');
}

interface SyncProgress {
  phase: 'requested' | 'queued' | 'running' | 'done' | 'failed';
  started: number;
  elapsed: number;
  message: string;
}

async function readFile(file: File): Promise<string> {
  if (file.size > 64 * 1024) throw new Error(`${file.name} is ${file.size} bytes: a .vpptoken is a few KB.`);
  return sTokenFromFile(await file.text());
}

function Expiry({ t }: { t: VppToken }) {
  if (isNever(t.expirationDateTime)) return <span>unknown</span>;
  const days = daysUntil(t.expirationDateTime);
  const cls = days < 0 ? 'expiry expired' : days < kExpirySoonDays ? 'expiry soon' : 'expiry';
  const note = days < 0 ? 'expired ' : days < kExpirySoonDays ? 'expires soon: ' : '';
  return (
    <span class={cls} data-testid="expiry">
      <time dateTime={t.expirationDateTime}>{formatDate(t.expirationDateTime)}</time>
      <br />
      <small>
        {note}
        {relative(t.expirationDateTime)}
      </small>
    </span>
  );
}

function StateBadge({ state }: { state: string }) {
  const info = stateInfo(state);
  return (
    <span class={`badge ${info.tone}`} data-state={state}>
      {info.label}
    </span>
  );
}

function ConfirmDelete({ token, onConfirm, onClose }: { token: VppToken; onConfirm: () => void; onClose: () => void }) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    ref.current?.showModal();
  }, []);
  return (
    <dialog ref={ref} aria-labelledby="del-h" onClose={onClose}>
      <h2 id="del-h">Delete “{tokenName(token)}”?</h2>
      <p>
        vppd forgets the token, its apps and licence counts. Licences stay assigned at Apple. This cannot be undone;
        upload the .vpptoken again to get it back.
      </p>
      <form method="dialog" class="row">
        <button value="cancel" autofocus>
          Cancel
        </button>
        <button
          class="danger"
          value="delete"
          onClick={(e) => {
            e.preventDefault();
            onConfirm();
            ref.current?.close();
          }}
        >
          Delete token
        </button>
      </form>
    </dialog>
  );
}

function AddToken({ graph, onAdded }: { graph: Graph; onAdded: (message: string) => void }) {
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    const form = e.currentTarget as HTMLFormElement;
    const file = (form.elements.namedItem('vpptoken') as HTMLInputElement).files?.[0];
    if (!file) {
      setError('Choose a .vpptoken file first.');
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const created = await graph.createToken(await readFile(file));
      form.reset();
      onAdded(`Added ${tokenName(created)}; its first sync has started.`);
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="card add" onSubmit={submit} aria-labelledby="add-h">
      <h2 id="add-h">Add a token</h2>
      <p class="hint">
        Download the location's <code>.vpptoken</code> in Apple Business Manager or Apple School Manager (Preferences →
        Payments and Billing → Content Tokens).
      </p>
      <div class="row">
        <label for="vpptoken">.vpptoken file</label>
        <input id="vpptoken" name="vpptoken" type="file" accept=".vpptoken,text/plain" />
        <button class="primary" type="submit" disabled={busy}>
          Upload
        </button>
      </div>
      {error && (
        <p role="alert" class="error">
          {error}
        </p>
      )}
    </form>
  );
}

export function TokensPage({ graph }: { graph: Graph }) {
  const [tokens, setTokens] = useState<VppToken[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string>('');
  const [progress, setProgress] = useState<Record<string, SyncProgress>>({});
  const [deleting, setDeleting] = useState<VppToken | null>(null);
  const alive = useRef(true);
  useEffect(
    () => () => {
      alive.current = false;
    },
    [],
  );

  const reload = useCallback(async () => {
    try {
      const list = await graph.tokens();
      if (alive.current) setTokens(list);
      performance.mark('vppd-console-tokens'); // bench/console: the Tokens page has its data
      setError(null);
    } catch (e) {
      if (alive.current) setError((e as Error).message);
    }
  }, [graph]);
  useEffect(() => {
    reload();
  }, [reload]);

  const setOne = (id: string, p: SyncProgress) => setProgress((all) => ({ ...all, [id]: p }));

  // POST syncLicenses, then poll the token until its sync entry leaves pending/active.
  const sync = async (t: VppToken) => {
    const started = Date.now();
    setOne(t.id, { phase: 'requested', started, elapsed: 0, message: 'Sync requested…' });
    try {
      await graph.syncLicenses(t.id);
      for (;;) {
        await new Promise((r) => setTimeout(r, kPollMs));
        if (!alive.current) return;
        const now = await graph.token(t.id);
        const elapsed = Date.now() - started;
        const entry = syncEntry(now);
        setTokens((list) => list && list.map((x) => (x.id === now.id ? now : x)));
        if (!syncRunning(now)) {
          const ok = now.lastSyncStatus === 'completed' && entry?.actionState !== 'failed';
          setOne(t.id, {
            phase: ok ? 'done' : 'failed',
            started,
            elapsed,
            message: ok
              ? `Synced in ${(elapsed / 1000).toFixed(1)} s: ${now.lastAppCount ?? 0} apps.`
              : `Sync failed after ${(elapsed / 1000).toFixed(1)} s. ${failureReason(now)}`,
          });
          return;
        }
        const running = entry?.actionState === 'active';
        setOne(t.id, {
          phase: running ? 'running' : 'queued',
          started,
          elapsed,
          message: `${running ? 'Running' : 'Queued'} · ${(elapsed / 1000).toFixed(1)} s`,
        });
        if (elapsed > kSyncTimeoutMs) throw new Error('still running after 10 minutes; the worker keeps going');
      }
    } catch (e) {
      setOne(t.id, { phase: 'failed', started, elapsed: Date.now() - started, message: (e as Error).message });
    }
  };

  const renew = async (t: VppToken, input: HTMLInputElement) => {
    const file = input.files?.[0];
    if (!file) return;
    try {
      await graph.renewToken(t.id, await readFile(file));
      setNotice(`Renewed ${tokenName(t)}; it syncs now.`);
      await reload();
    } catch (e) {
      setNotice(`Renewing ${tokenName(t)} failed: ${(e as Error).message}`);
    } finally {
      input.value = '';
    }
  };

  const remove = async (t: VppToken) => {
    try {
      await graph.deleteToken(t.id);
      setNotice(`Deleted ${tokenName(t)}.`);
    } catch (e) {
      setNotice(`Deleting ${tokenName(t)} failed: ${(e as Error).message}`);
    }
    await reload();
  };

  const expiringSoon = (tokens ?? []).filter(
    (t) => !isNever(t.expirationDateTime) && daysUntil(t.expirationDateTime) < kExpirySoonDays,
  ).length;

  return (
    <>
      <p class="summary" aria-live="polite">
        {tokens === null
          ? 'Loading tokens…'
          : `${tokens.length} token${tokens.length === 1 ? '' : 's'}` +
            (expiringSoon ? `, ${expiringSoon} expired or expiring within ${kExpirySoonDays} days` : '')}
        <button class="link" onClick={reload}>
          Refresh
        </button>
      </p>
      <p class="notice" role="status">
        {notice}
      </p>
      {error && (
        <p role="alert" class="error">
          {error}
        </p>
      )}
      {tokens && tokens.length > 0 && (
        <div class="table-wrap">
          <table class="tokens">
            <caption class="visually-hidden">VPP tokens</caption>
            <thead>
              <tr>
                <th scope="col">Token</th>
                <th scope="col">State</th>
                <th scope="col">Expires</th>
                <th scope="col">Last sync</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {tokens.map((t) => {
                const p = progress[t.id];
                const busy = p && (p.phase === 'requested' || p.phase === 'queued' || p.phase === 'running');
                const reason = failureReason(t);
                return (
                  <tr key={t.id} data-token-id={t.id}>
                    <th scope="row" data-label="Token">
                      <strong>{tokenName(t)}</strong>
                      <br />
                      <small>
                        {t.locationName ?? 'location not synced yet'}
                        {t.appleId ? ` · ${t.appleId}` : ''}
                        {` · ${t.lastAppCount ?? 0} apps`}
                      </small>
                    </th>
                    <td data-label="State">
                      <StateBadge state={t.state} />
                    </td>
                    <td data-label="Expires">
                      <Expiry t={t} />
                    </td>
                    <td data-label="Last sync">
                      <span class={`sync ${t.lastSyncStatus}`}>{t.lastSyncStatus}</span>{' '}
                      <small>
                        {isNever(t.lastSyncDateTime) ? 'never synced' : relative(t.lastSyncDateTime)}
                      </small>
                      {reason && <p class="reason">{reason}</p>}
                      <div class="progress" aria-live="polite" data-testid="sync-progress">
                        {p && (
                          <>
                            {busy && <progress aria-label={`Sync of ${tokenName(t)}`} />}
                            <span class={`phase ${p.phase}`}>{p.message}</span>
                          </>
                        )}
                      </div>
                    </td>
                    <td data-label="Actions">
                      <div class="actions">
                      <button onClick={() => sync(t)} disabled={busy} aria-label={`Sync ${tokenName(t)}`}>
                        Sync
                      </button>
                      <label class="button" title="Upload a renewed .vpptoken for this location">
                        Renew…
                        <input
                          class="visually-hidden"
                          type="file"
                          accept=".vpptoken,text/plain"
                          aria-label={`Renew ${tokenName(t)} with a .vpptoken file`}
                          onChange={(e) => renew(t, e.currentTarget)}
                        />
                      </label>
                      <button class="danger" onClick={() => setDeleting(t)} aria-label={`Delete ${tokenName(t)}`}>
                        Delete
                      </button>
                      </div>
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
      {tokens && tokens.length === 0 && <p>No tokens yet: add one below.</p>}
      <AddToken
        graph={graph}
        onAdded={(message) => {
          setNotice(message);
          reload();
        }}
      />
      {deleting && <ConfirmDelete token={deleting} onConfirm={() => remove(deleting)} onClose={() => setDeleting(null)} />}
    </>
  );
}
