// The console's shell: configuration, sign-in, navigation between the pages (#/tokens,
// #/licences, #/assignments, #/activity), and one Graph client for all of them.
import { render } from 'preact';
import { useEffect, useMemo, useState } from 'preact/hooks';
import * as auth from './auth';
import { Graph } from './graph';
import { ActivityPage } from './pages/activity';
import { AssignmentsPage } from './pages/assignments';
import { LicencesPage } from './pages/licences';
import { TokensPage } from './pages/tokens';
import './style.css';

const kPages = [
  { hash: '#/tokens', title: 'Tokens' },
  { hash: '#/licences', title: 'Licences' },
  { hash: '#/assignments', title: 'Assignments' },
  { hash: '#/activity', title: 'Activity' },
] as const;

function currentHash(): string {
  return kPages.some((p) => p.hash === window.location.hash) ? window.location.hash : '#/tokens';
}

function SignIn({ config, onSignedIn }: { config: auth.ConsoleConfig; onSignedIn: () => void }) {
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  // The first moment a person can act: bench/console reads this mark.
  useEffect(() => void performance.mark('vppd-console-interactive'), []);
  const run = async (how: () => Promise<unknown>) => {
    setBusy(true);
    setError(null);
    try {
      await how();
      onSignedIn();
    } catch (e) {
      setError((e as Error).message);
    } finally {
      setBusy(false);
    }
  };
  return (
    <main id="main" class="signin">
      <h1>vppd console</h1>
      <p>Volume Purchase Program tokens and licences, through vppd's Microsoft Graph API.</p>
      {config.dev && (
        <section aria-labelledby="dev-h">
          <h2 id="dev-h">Development server</h2>
          <p>
            This vppd runs with <code>--dev</code>: sign in as the dev tenant's administrator with the server's dev
            key (offered to this machine only).
          </p>
          <button class="primary" disabled={busy} onClick={() => run(auth.signInDev)}>
            Sign in with the dev key
          </button>
        </section>
      )}
      {config.oidc && (
        <section aria-labelledby="oidc-h">
          <h2 id="oidc-h">Organisation sign-in</h2>
          <p>
            Signs in at <code>{config.oidc.issuer}</code> and asks for <code>{config.oidc.scopes}</code>.
          </p>
          <button class="primary" disabled={busy} onClick={() => run(() => auth.startOidc(config.oidc!))}>
            Sign in
          </button>
        </section>
      )}
      {!config.dev && !config.oidc && (
        <p role="alert">
          No sign-in is configured: start vppd with <code>--dev</code>, or set <code>console.oidc_issuer</code> and{' '}
          <code>console.oidc_client_id</code> (README, "The console").
        </p>
      )}
      {error && (
        <p role="alert" class="error">
          {error}
        </p>
      )}
    </main>
  );
}

function Shell({ onSignOut }: { onSignOut: () => void }) {
  const [hash, setHash] = useState(currentHash());
  useEffect(() => {
    const onHash = () => setHash(currentHash());
    window.addEventListener('hashchange', onHash);
    return () => window.removeEventListener('hashchange', onHash);
  }, []);
  const graph = useMemo(() => new Graph(auth.bearer, onSignOut), [onSignOut]);
  const page = kPages.find((p) => p.hash === hash)!;
  useEffect(() => {
    document.title = `${page.title} · vppd console`;
    document.getElementById('page-h')?.focus();
  }, [page]);
  return (
    <>
      <a class="skip" href="#main" onClick={(e) => (e.preventDefault(), document.getElementById('main')?.focus())}>
        Skip to content
      </a>
      <header class="top">
        <span class="brand">vppd</span>
        <nav aria-label="Pages">
          <ul>
            {kPages.map((p) => (
              <li key={p.hash}>
                <a href={p.hash} aria-current={p.hash === hash ? 'page' : undefined}>
                  {p.title}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <button class="link" onClick={onSignOut}>
          Sign out
        </button>
      </header>
      <main id="main" tabIndex={-1}>
        <h1 id="page-h" tabIndex={-1}>
          {page.title}
        </h1>
        {hash === '#/tokens' && <TokensPage graph={graph} />}
        {hash === '#/licences' && <LicencesPage graph={graph} />}
        {hash === '#/assignments' && <AssignmentsPage graph={graph} />}
        {hash === '#/activity' && <ActivityPage graph={graph} />}
      </main>
    </>
  );
}

function App() {
  const [config, setConfig] = useState<auth.ConsoleConfig | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [signedIn, setSignedIn] = useState(false);
  useEffect(() => {
    (async () => {
      const loaded = await auth.loadConfig();
      setConfig(loaded);
      if (await auth.finishOidc(loaded.oidc)) setSignedIn(true);
    })().catch((e: Error) => setError(e.message));
  }, []);
  const signOut = useMemo(
    () => () => {
      auth.signOut();
      setSignedIn(false);
    },
    [],
  );
  if (error)
    return (
      <main id="main" class="signin">
        <h1>vppd console</h1>
        <p role="alert" class="error">
          {error}
        </p>
      </main>
    );
  if (!config) return <p class="boot">Loading…</p>;
  if (!signedIn || !auth.current()) return <SignIn config={config} onSignedIn={() => setSignedIn(true)} />;
  return <Shell onSignOut={signOut} />;
}

render(<App />, document.getElementById('app')!);
