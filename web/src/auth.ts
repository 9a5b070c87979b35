// Sign-in. The bearer token lives in this module's memory only: never in localStorage,
// sessionStorage or a cookie. A reload signs out.
//
// - Dev mode (`vppd serve --dev`, `vppd demo`): POST /console/dev-token, which a --dev
//   server answers to loopback callers only with a token signed by its dev key.
// - Otherwise: OAuth 2.0 authorization code with PKCE (RFC 7636, S256) against the issuer
//   that /console/config.json names; its endpoints come from the issuer's
//   /.well-known/openid-configuration. Only the PKCE verifier and `state` cross the
//   redirect, in sessionStorage, and are removed as soon as the browser is back.

export interface OidcConfig {
  issuer: string;
  clientId: string;
  scopes: string;
}

export interface ConsoleConfig {
  dev: boolean;
  oidc: OidcConfig | null;
}

export interface Session {
  accessToken: string;
  expiresAt: number; // ms since the epoch
  how: 'dev' | 'oidc';
}

let session: Session | null = null;

export function current(): Session | null {
  if (session && Date.now() >= session.expiresAt) session = null;
  return session;
}

export function bearer(): string | null {
  return current()?.accessToken ?? null;
}

export function signOut(): void {
  session = null;
}

export async function loadConfig(): Promise<ConsoleConfig> {
  const response = await fetch('/console/config.json', { cache: 'no-store', credentials: 'omit' });
  if (!response.ok) throw new Error(`/console/config.json: HTTP ${response.status}`);
  return response.json();
}

export async function signInDev(): Promise<Session> {
  const response = await fetch('/console/dev-token', { method: 'POST', cache: 'no-store', credentials: 'omit' });
  if (!response.ok) {
    let message = `HTTP ${response.status}`;
    try {
      message = (await response.json())?.error?.message ?? message;
    } catch {
      // keep the status
    }
    throw new Error(`Dev sign-in failed: ${message}`);
  }
  const body: { access_token: string; expires_in: number } = await response.json();
  session = { accessToken: body.access_token, expiresAt: Date.now() + body.expires_in * 1000, how: 'dev' };
  return session;
}

// --- OAuth 2.0 authorization code + PKCE ---------------------------------------------

const kPending = 'vppd-console-pkce'; // sessionStorage key: {state, verifier}, never a token

interface Discovery {
  authorization_endpoint: string;
  token_endpoint: string;
}

async function discover(issuer: string): Promise<Discovery> {
  const url = issuer.replace(/\/+$/, '') + '/.well-known/openid-configuration';
  const response = await fetch(url, { credentials: 'omit' });
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  const doc = await response.json();
  if (typeof doc.authorization_endpoint !== 'string' || typeof doc.token_endpoint !== 'string') {
    throw new Error(`${url} names no authorization_endpoint or token_endpoint`);
  }
  return doc;
}

function base64Url(bytes: Uint8Array): string {
  let binary = '';
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function randomString(): string {
  return base64Url(crypto.getRandomValues(new Uint8Array(32)));
}

function redirectUri(): string {
  return window.location.origin + '/';
}

export async function startOidc(oidc: OidcConfig): Promise<void> {
  const endpoints = await discover(oidc.issuer);
  const verifier = randomString();
  const state = randomString();
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier)));
  sessionStorage.setItem(kPending, JSON.stringify({ state, verifier }));
  const url = new URL(endpoints.authorization_endpoint);
  url.searchParams.set('response_type', 'code');
  url.searchParams.set('client_id', oidc.clientId);
  url.searchParams.set('redirect_uri', redirectUri());
  url.searchParams.set('scope', oidc.scopes);
  url.searchParams.set('state', state);
  url.searchParams.set('code_challenge', base64Url(digest));
  url.searchParams.set('code_challenge_method', 'S256');
  window.location.assign(url.toString());
}

// On the way back from the issuer (?code=…&state=…): exchanges the code for a token.
// Returns null when the page was not opened by a redirect from the issuer.
export async function finishOidc(oidc: OidcConfig | null): Promise<Session | null> {
  const params = new URLSearchParams(window.location.search);
  const code = params.get('code');
  const error = params.get('error');
  if (!code && !error) return null;
  const pending = sessionStorage.getItem(kPending);
  sessionStorage.removeItem(kPending);
  window.history.replaceState(null, '', '/' + window.location.hash); // the code never stays in the address bar
  if (error) throw new Error(`The issuer refused sign-in: ${error} ${params.get('error_description') ?? ''}`);
  if (!oidc) throw new Error('This server has no OIDC issuer configured.');
  const { state, verifier } = pending ? JSON.parse(pending) : { state: null, verifier: null };
  if (!state || state !== params.get('state')) throw new Error('Sign-in answer does not match the request (state).');
  const endpoints = await discover(oidc.issuer);
  const form = new URLSearchParams({
    grant_type: 'authorization_code',
    code: code!,
    redirect_uri: redirectUri(),
    client_id: oidc.clientId,
    code_verifier: verifier,
  });
  const response = await fetch(endpoints.token_endpoint, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: form,
    credentials: 'omit',
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok || typeof body.access_token !== 'string') {
    throw new Error(`Token exchange failed: ${body.error ?? response.status} ${body.error_description ?? ''}`);
  }
  session = {
    accessToken: body.access_token,
    expiresAt: Date.now() + (Number(body.expires_in) || 3600) * 1000,
    how: 'oidc',
  };
  return session;
}
