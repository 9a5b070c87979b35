// Activity: the tokenActionResults of every token, newest first.
import { useEffect, useMemo, useState } from 'preact/hooks';
import { formatDate, relative } from '../format';
import { ActionResult, Graph, isNever, VppToken } from '../graph';
import { tokenName } from './tokens';

interface Entry extends ActionResult {
  token: VppToken;
}

// "1.2 s", "3 min 4 s" between two ISO date-times.
function duration(from: string, to: string): string {
  const seconds = Math.max(0, (new Date(to).getTime() - new Date(from).getTime()) / 1000);
  return seconds < 60 ? `${seconds.toFixed(1)} s` : `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
}

const kTones: Record<string, string> = { done: 'ok', failed: 'bad', active: 'warn', pending: 'warn' };

export function ActivityPage({ graph }: { graph: Graph }) {
  const [tokens, setTokens] = useState<VppToken[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [stateFilter, setStateFilter] = useState('');

  useEffect(() => {
    graph
      .tokens()
      .then(setTokens)
      .catch((e: Error) => setError(e.message));
  }, [graph]);

  const entries = useMemo(() => {
    const out: Entry[] = [];
    for (const token of tokens ?? []) for (const r of token.tokenActionResults) out.push({ ...r, token });
    const when = (e: Entry) => (isNever(e.lastUpdatedDateTime) ? e.startDateTime : e.lastUpdatedDateTime);
    out.sort((a, b) => when(b).localeCompare(when(a)));
    return out.filter((e) => !stateFilter || e.actionState === stateFilter);
  }, [tokens, stateFilter]);

  return (
    <>
      {error && (
        <p role="alert" class="error">
          {error}
        </p>
      )}
      <form class="filters" onSubmit={(e) => e.preventDefault()} aria-label="Filter activity">
        <label>
          State
          <select value={stateFilter} onChange={(e) => setStateFilter(e.currentTarget.value)}>
            <option value="">All</option>
            {['done', 'failed', 'active', 'pending', 'canceled', 'notSupported'].map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
      </form>
      <p class="summary" aria-live="polite">
        {tokens === null ? 'Loading…' : `${entries.length} action${entries.length === 1 ? '' : 's'}`}
      </p>
      {tokens && (
        <div class="table-wrap">
          <table class="activity">
            <caption class="visually-hidden">Token actions, newest first</caption>
            <thead>
              <tr>
                <th scope="col">When</th>
                <th scope="col">Token</th>
                <th scope="col">Action</th>
                <th scope="col">State</th>
                <th scope="col">Details</th>
              </tr>
            </thead>
            <tbody>
              {entries.map((e, i) => (
                <tr key={`${e.token.id}-${e.actionName}-${i}`}>
                  <td data-label="When">
                    <time dateTime={e.lastUpdatedDateTime}>{formatDate(e.lastUpdatedDateTime)}</time>
                    <br />
                    <small>{relative(e.lastUpdatedDateTime)}</small>
                  </td>
                  <th scope="row" data-label="Token">
                    {tokenName(e.token)}
                  </th>
                  <td data-label="Action">{e.actionName}</td>
                  <td data-label="State">
                    <span class={`badge ${kTones[e.actionState] ?? 'neutral'}`}>{e.actionState}</span>
                  </td>
                  <td data-label="Details">
                    started {formatDate(e.startDateTime)}
                    {!isNever(e.startDateTime) && !isNever(e.lastUpdatedDateTime) && (
                      <> · took {duration(e.startDateTime, e.lastUpdatedDateTime)}</>
                    )}
                    {e.actionFailureReason && e.actionFailureReason !== 'none' && <> · {e.actionFailureReason}</>}
                    {e.totalLicensesCount !== undefined && (
                      <>
                        {' '}
                        · {e.failedLicensesCount ?? 0} of {e.totalLicensesCount} licences failed
                      </>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </>
  );
}
