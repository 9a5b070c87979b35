// Licences: per app (each platform's mobileApp) and per book (managedEBook), purchased /
// in use / available as a bar, and the untracked licences (Apple holds them, vppd did not
// grant them: vppd's annotation and its vppd.untrackedLicenses() function); sorting,
// filtering, and a CSV of what is shown.
import { Fragment } from 'preact';
import { useEffect, useMemo, useState } from 'preact/hooks';
import { download, toCsv } from '../format';
import { Graph, ManagedEBook, MobileApp, UNLIMITED, UNTRACKED_COUNT, UntrackedLicense, VppToken } from '../graph';
import { tokenName } from './tokens';

type SortKey = 'name' | 'purchased' | 'used' | 'available' | 'untracked' | 'usage';

interface Row {
  id: string;
  kind: 'app' | 'book'; // a mobileApp, or a managedEBook (licensed to users only)
  name: string;
  bundleId: string;
  platform: string; // iOS / macOS
  tokenId: string;
  token: string;
  purchased: number; // UNLIMITED for Apple's unlimited
  used: number;
  untracked: number | null; // null: the server did not say (a vppd without the report)
}

const unlimited = (r: Row) => r.purchased >= UNLIMITED;
const available = (r: Row) => (unlimited(r) ? Infinity : Math.max(0, r.purchased - r.used));
const usage = (r: Row) => (unlimited(r) ? 0 : r.purchased > 0 ? r.used / r.purchased : r.used > 0 ? Infinity : 0);

function toRow(app: MobileApp, tokens: Map<string, VppToken>): Row {
  const token = app.vppTokenId ? tokens.get(app.vppTokenId) : undefined;
  return {
    id: app.id,
    kind: 'app',
    name: app.displayName,
    bundleId: app.bundleId ?? '',
    platform: app['@odata.type'] === '#microsoft.graph.macOsVppApp' ? 'macOS' : 'iOS',
    tokenId: app.vppTokenId ?? '',
    token: token ? tokenName(token) : (app.vppTokenOrganizationName ?? ''),
    purchased: app.totalLicenseCount ?? 0,
    used: app.usedLicenseCount ?? 0,
    untracked: app[UNTRACKED_COUNT] ?? null,
  };
}

function bookRow(book: ManagedEBook, tokens: Map<string, VppToken>): Row {
  const token = book.vppTokenId ? tokens.get(book.vppTokenId) : undefined;
  return {
    id: book.id,
    kind: 'book',
    name: book.displayName,
    bundleId: '',
    platform: 'iOS', // iosVppEBook: Apple Books on iOS and iPadOS
    tokenId: book.vppTokenId ?? '',
    token: token ? tokenName(token) : (book.vppOrganizationName ?? ''),
    purchased: book.totalLicenseCount ?? 0,
    used: book.usedLicenseCount ?? 0,
    untracked: book[UNTRACKED_COUNT] ?? null,
  };
}

const kColumns: { key: SortKey; label: string }[] = [
  { key: 'name', label: 'App or book' },
  { key: 'purchased', label: 'Purchased' },
  { key: 'used', label: 'In use' },
  { key: 'available', label: 'Available' },
  { key: 'untracked', label: 'Untracked' },
  { key: 'usage', label: 'Usage' },
];

function compare(key: SortKey): (a: Row, b: Row) => number {
  switch (key) {
    case 'name':
      return (a, b) => a.name.localeCompare(b.name) || a.platform.localeCompare(b.platform);
    case 'purchased':
      return (a, b) => a.purchased - b.purchased;
    case 'used':
      return (a, b) => a.used - b.used;
    case 'available':
      return (a, b) => (available(a) === available(b) ? 0 : available(a) < available(b) ? -1 : 1);
    case 'untracked':
      return (a, b) => (a.untracked ?? -1) - (b.untracked ?? -1);
    case 'usage':
      return (a, b) => (usage(a) === usage(b) ? 0 : usage(a) < usage(b) ? -1 : 1);
  }
}

// The licences Apple holds for one app or book that vppd did not grant, read when opened.
function UntrackedList({ graph, row }: { graph: Graph; row: Row }) {
  const [items, setItems] = useState<UntrackedLicense[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    graph
      .untrackedLicenses(row.kind, row.id)
      .then(setItems)
      .catch((e: Error) => setError(e.message));
  }, [graph, row.kind, row.id]);
  if (error) {
    return (
      <p role="alert" class="error">
        {error}
      </p>
    );
  }
  if (!items) return <p aria-live="polite">Loading untracked licences…</p>;
  return (
    <table class="untracked" aria-label={`Untracked licences of ${row.name}`}>
      <thead>
        <tr>
          <th scope="col">Held by</th>
          <th scope="col">Serial number or clientUserId</th>
          <th scope="col">In the directory</th>
        </tr>
      </thead>
      <tbody>
        {items.map((l) => (
          <tr key={l.serialNumber ?? `u:${l.clientUserId}`} data-untracked={l.serialNumber ?? l.clientUserId ?? ''}>
            <td data-label="Held by">{l.serialNumber ? 'device' : 'user'}</td>
            <td data-label="Serial number or clientUserId">
              <code>{l.serialNumber ?? l.clientUserId}</code>
            </td>
            <td data-label="In the directory">
              {l.serialNumber
                ? (l.deviceName ?? (l.managedDeviceId ? 'managed device' : 'no managed device'))
                : (l.userPrincipalName ?? 'not a directory user')}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function Bar({ row }: { row: Row }) {
  if (unlimited(row)) return <span class="bar-text">unlimited · {row.used} in use</span>;
  const share = row.purchased > 0 ? Math.min(1, row.used / row.purchased) : row.used > 0 ? 1 : 0;
  const tone = share >= 1 ? 'bad' : share >= 0.9 ? 'warn' : 'ok';
  const label = `${row.used} of ${row.purchased} in use, ${available(row)} available`;
  return (
    <span class="bar-wrap">
      <meter
        class={`bar ${tone}`}
        min={0}
        max={Math.max(1, row.purchased)}
        low={Math.max(1, row.purchased) * 0.9}
        high={Math.max(1, row.purchased) * 0.99}
        optimum={0}
        value={Math.min(row.used, Math.max(1, row.purchased))}
        aria-label={label}
        title={label}
      />
      <span class="bar-text">{Math.round(share * 100)}%</span>
    </span>
  );
}

export function LicencesPage({ graph }: { graph: Graph }) {
  const [rows, setRows] = useState<Row[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [filter, setFilter] = useState('');
  const [tokenFilter, setTokenFilter] = useState('');
  const [platform, setPlatform] = useState('');
  const [kind, setKind] = useState('');
  const [sort, setSort] = useState<{ key: SortKey; descending: boolean }>({ key: 'usage', descending: true });
  const [tokens, setTokens] = useState<VppToken[]>([]);
  const [opened, setOpened] = useState<string | null>(null); // the row whose untracked licences are shown

  useEffect(() => {
    (async () => {
      const [tokenList, apps, books] = await Promise.all([graph.tokens(), graph.apps(true), graph.ebooks(true)]);
      const byId = new Map(tokenList.map((t) => [t.id, t]));
      setTokens(tokenList);
      setRows([...apps.map((a) => toRow(a, byId)), ...books.map((b) => bookRow(b, byId))]);
    })().catch((e: Error) => setError(e.message));
  }, [graph]);

  const shown = useMemo(() => {
    if (!rows) return [];
    const needle = filter.trim().toLowerCase();
    const out = rows.filter(
      (r) =>
        (!needle || r.name.toLowerCase().includes(needle) || r.bundleId.toLowerCase().includes(needle)) &&
        (!tokenFilter || r.tokenId === tokenFilter) &&
        (!platform || r.platform === platform) &&
        (!kind || r.kind === kind),
    );
    const cmp = compare(sort.key);
    out.sort((a, b) => (sort.descending ? -cmp(a, b) : cmp(a, b)) || a.id.localeCompare(b.id));
    return out;
  }, [rows, filter, tokenFilter, platform, kind, sort]);

  const exportCsv = () => {
    const csv = toCsv(
      [
        'id',
        'kind',
        'displayName',
        'bundleId',
        'platform',
        'vppTokenId',
        'totalLicenseCount',
        'usedLicenseCount',
        'available',
        'untrackedLicenseCount',
      ],
      shown.map((r) => [
        r.id,
        r.kind,
        r.name,
        r.bundleId,
        r.platform,
        r.tokenId,
        r.purchased,
        r.used,
        unlimited(r) ? 'unlimited' : available(r),
        r.untracked ?? '',
      ]),
    );
    download(`vppd-licences-${new Date().toISOString().slice(0, 10)}.csv`, csv);
  };

  const totals = shown.reduce(
    (acc, r) => (unlimited(r) ? acc : { purchased: acc.purchased + r.purchased, used: acc.used + r.used }),
    { purchased: 0, used: 0 },
  );
  const untracked = shown.reduce((n, r) => n + (r.untracked ?? 0), 0);

  return (
    <>
      {error && (
        <p role="alert" class="error">
          {error}
        </p>
      )}
      <form class="filters" onSubmit={(e) => e.preventDefault()} role="search" aria-label="Filter apps and books">
        <label>
          Search
          <input type="search" value={filter} placeholder="name or bundle id" onInput={(e) => setFilter(e.currentTarget.value)} />
        </label>
        <label>
          Token
          <select value={tokenFilter} onChange={(e) => setTokenFilter(e.currentTarget.value)}>
            <option value="">All tokens</option>
            {tokens.map((t) => (
              <option key={t.id} value={t.id}>
                {tokenName(t)}
              </option>
            ))}
          </select>
        </label>
        <label>
          Kind
          <select value={kind} onChange={(e) => setKind(e.currentTarget.value)}>
            <option value="">Apps and books</option>
            <option value="app">Apps</option>
            <option value="book">Books</option>
          </select>
        </label>
        <label>
          Platform
          <select value={platform} onChange={(e) => setPlatform(e.currentTarget.value)}>
            <option value="">iOS and macOS</option>
            <option value="iOS">iOS</option>
            <option value="macOS">macOS</option>
          </select>
        </label>
        <button type="button" onClick={exportCsv} disabled={!rows}>
          Export CSV
        </button>
      </form>
      <p class="summary" aria-live="polite">
        {rows === null
          ? 'Loading apps and books…'
          : `${shown.length} of ${rows.length} apps and books · ${totals.used} of ${totals.purchased} counted licences in use · ${untracked} untracked (held at Apple, not granted by vppd)`}
      </p>
      {rows && (
        <div class="table-wrap">
          <table class="licences">
            <caption class="visually-hidden">Licences per app and book, sorted by {sort.key}</caption>
            <thead>
              <tr>
                {kColumns.map((c) => (
                  <th
                    scope="col"
                    key={c.key}
                    aria-sort={sort.key === c.key ? (sort.descending ? 'descending' : 'ascending') : undefined}
                  >
                    <button
                      class="sort"
                      onClick={() =>
                        setSort((s) => ({ key: c.key, descending: s.key === c.key ? !s.descending : c.key !== 'name' }))
                      }
                    >
                      {c.label}
                      <span aria-hidden="true">{sort.key === c.key ? (sort.descending ? ' ▼' : ' ▲') : ''}</span>
                    </button>
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              {shown.map((r) => (
                <Fragment key={r.id}>
                  <tr data-app-id={r.id} data-kind={r.kind}>
                    <th scope="row" data-label={r.kind === 'book' ? 'Book' : 'App'}>
                      {r.name} <span class="platform">{r.platform}</span>
                      {r.kind === 'book' && <span class="kind-book">Book</span>}
                      <br />
                      <small>{r.kind === 'book' ? r.token : `${r.bundleId} · ${r.token}`}</small>
                    </th>
                    <td data-label="Purchased" class="num">
                      {unlimited(r) ? 'unlimited' : r.purchased}
                    </td>
                    <td data-label="In use" class="num">
                      {r.used}
                    </td>
                    <td data-label="Available" class="num">
                      {unlimited(r) ? 'unlimited' : available(r)}
                    </td>
                    <td data-label="Untracked" class="num">
                      {r.untracked === null ? (
                        '—'
                      ) : r.untracked === 0 ? (
                        '0'
                      ) : (
                        <button
                          class="link"
                          aria-expanded={opened === r.id}
                          aria-controls={`untracked-${r.id}`}
                          aria-label={`${r.untracked} untracked: ${opened === r.id ? 'hide' : 'show'} the licences of ${r.name} that vppd did not grant`}
                          onClick={() => setOpened((o) => (o === r.id ? null : r.id))}
                        >
                          {r.untracked}
                        </button>
                      )}
                    </td>
                    <td data-label="Usage">
                      <Bar row={r} />
                    </td>
                  </tr>
                  {opened === r.id && (
                    <tr class="untracked-detail" id={`untracked-${r.id}`}>
                      <td colSpan={kColumns.length}>
                        <UntrackedList graph={graph} row={r} />
                      </td>
                    </tr>
                  )}
                </Fragment>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </>
  );
}
