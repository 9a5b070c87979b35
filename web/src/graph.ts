// The console's only way to the server: Microsoft Graph's public routes under /beta, with
// the bearer token held in memory by auth.ts. Nothing here is private to the console;
// every call is one a script could make with curl.

export const GRAPH = '/beta/deviceAppManagement';
const DIRECTORY = '/beta';

// Apple's "unlimited" licence count, as Graph's totalLicenseCount shows it (Int32's maximum).
export const UNLIMITED = 2147483647;

export interface ActionResult {
  '@odata.type'?: string;
  actionName: string;
  actionState: string; // none pending canceled active done failed notSupported
  startDateTime: string;
  lastUpdatedDateTime: string;
  actionFailureReason?: string;
  failedLicensesCount?: number;
  totalLicensesCount?: number;
}

export interface VppToken {
  id: string;
  organizationName: string | null;
  displayName: string | null;
  locationName: string | null;
  appleId: string | null;
  vppTokenAccountType: string;
  countryOrRegion: string | null;
  expirationDateTime: string;
  lastSyncDateTime: string;
  lastModifiedDateTime: string;
  state: string; // unknown valid expired invalid assignedToExternalMDM duplicateLocationId
  lastSyncStatus: string; // none inProgress completed failed
  lastAppCount?: number;
  tokenActionResults: ActionResult[];
}

// vppd's instance annotation (its own `vppd` namespace in $metadata): how many licences Apple
// holds for the app or book that vppd did not grant. Sent only when the request's Prefer asks.
export const UNTRACKED_COUNT = '@vppd.untrackedLicenseCount';
const ASK_UNTRACKED = { Prefer: 'odata.include-annotations="vppd.untrackedLicenseCount"' };

export interface MobileApp {
  '@odata.type': string;
  id: string;
  displayName: string;
  bundleId?: string;
  appStoreUrl?: string; // Apple's store page, ending in /id<adamId>
  vppTokenId?: string;
  vppTokenOrganizationName?: string;
  totalLicenseCount?: number;
  usedLicenseCount?: number;
  [UNTRACKED_COUNT]?: number;
}

// A managedEBook (iosVppEBook): a VPP book, licensed to users only (issue 17).
export interface ManagedEBook {
  '@odata.type': string;
  id: string;
  displayName: string;
  publisher?: string | null;
  vppTokenId?: string;
  vppOrganizationName?: string | null;
  totalLicenseCount?: number;
  usedLicenseCount?: number;
  [UNTRACKED_COUNT]?: number;
}

// One licence Apple holds that vppd did not grant (vppd.untrackedLicenses()): a device's serial
// number or a person's clientUserId, with the managed device or directory user when known.
export interface UntrackedLicense {
  serialNumber: string | null;
  clientUserId: string | null;
  managedDeviceId: string | null;
  deviceName: string | null;
  userId: string | null;
  userPrincipalName: string | null;
}

// A mobileAppAssignment (issue 15): who should hold an app's licences.
export interface AppAssignment {
  id: string;
  intent: string; // required available uninstall availableWithoutEnrollment
  target: { '@odata.type': string; groupId?: string };
  settings?: { '@odata.type'?: string; useDeviceLicensing?: boolean } | null;
}

// One licence Apple holds for an app: a user's (userId: the clientUserId) or a device's
// (deviceName: the managed device's name, or the serial number when no managed device has it).
export interface AssignedLicense {
  '@odata.type': string;
  id: string;
  userId?: string | null;
  deviceName?: string | null;
  managedDeviceId?: string | null;
}

// One targeted device of an app (mobileAppInstallStatus from deviceStatuses): where its
// licence stands. vppd installs nothing: installState is the licence's state.
export interface DeviceStatus {
  id: string; // the managed device
  deviceName: string | null;
  installState: string; // installed pendingInstall failed unknown ...
  errorCode: number; // Apple's error number when failed (9709: not enough licences)
  lastSyncDateTime: string;
}

// One person an app's user-licensing assignments reach (userAppInstallStatus from
// userStatuses). vppd counts the person's licence as one device: installed when granted,
// failed when it failed or Apple refused the person, notInstalled otherwise (waiting).
export interface UserStatus {
  id: string; // the directory user, and Apple's clientUserId
  userName: string | null;
  userPrincipalName: string | null;
  installedDeviceCount: number;
  failedDeviceCount: number;
  notInstalledDeviceCount: number;
}

// One user licence vppd hands out, as vppUserStatus lists it.
export interface VppUserLicense {
  adamId: string;
  pricingParam: string;
  state: string; // pending granted failed reclaimPending
  errorCode: string | null; // Apple's error number, as text
  errorMessage: string | null;
}

// Where a person stands with Apple at one vppToken's location (vppd's vppUserStatus).
export interface VppUserLocation {
  vppTokenId: string;
  clientUserId: string;
  email: string | null;
  status: string; // creating Registered Associated retiring Retired failed (Apple refused the person)
  associated: boolean;
  inviteCode: string | null;
  inviteUrl: string | null;
  errorCode: string | null; // Apple's refusal of the person
  errorMessage: string | null;
  licenses: VppUserLicense[];
}

// vppd's GET /users/{id}/vppUserStatus (permission as reading users: User.Read.All).
export interface VppUserStatus {
  userId: string;
  userPrincipalName: string;
  locations: VppUserLocation[];
}

export interface Group {
  id: string;
  displayName: string | null;
}

// A Graph error, with the envelope's code and message when the server sent one.
export class GraphError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

// Graph's "never" (0001-01-01T00:00:00Z): a date that was not set.
export function isNever(iso: string | null | undefined): boolean {
  return !iso || iso.startsWith('0001-01-01');
}

export class Graph {
  constructor(
    private readonly bearer: () => string | null,
    private readonly onUnauthorized: () => void,
  ) {}

  private async call(method: string, url: string, body?: unknown, extra: Record<string, string> = {}): Promise<Response> {
    const token = this.bearer();
    const headers: Record<string, string> = { Accept: 'application/json', ...extra };
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'omit',
    });
    if (!response.ok) {
      let code = `HTTP ${response.status}`;
      let message = response.statusText || code;
      try {
        const envelope = await response.json();
        code = envelope?.error?.code ?? code;
        message = envelope?.error?.message ?? message;
      } catch {
        // not Graph's envelope: keep the status line
      }
      if (response.status === 401) this.onUnauthorized();
      throw new GraphError(response.status, code, message);
    }
    return response;
  }

  async get<T>(url: string, headers?: Record<string, string>): Promise<T> {
    return (await this.call('GET', url, undefined, headers)).json();
  }

  // Every page of a collection, following @odata.nextLink.
  async list<T>(url: string, headers?: Record<string, string>): Promise<T[]> {
    const items: T[] = [];
    let next: string | undefined = url;
    for (let pages = 0; next && pages < 1000; ++pages) {
      const page: { value: T[]; '@odata.nextLink'?: string } = await this.get(next, headers);
      items.push(...page.value);
      // nextLink is absolute (the server's public URL); follow only our own origin's path.
      next = page['@odata.nextLink'] ? sameOriginPath(page['@odata.nextLink']) : undefined;
    }
    return items;
  }

  tokens(): Promise<VppToken[]> {
    return this.list<VppToken>(`${GRAPH}/vppTokens`);
  }

  token(id: string): Promise<VppToken> {
    return this.get<VppToken>(`${GRAPH}/vppTokens/${encodeURIComponent(id)}`);
  }

  async createToken(sToken: string): Promise<VppToken> {
    return (await this.call('POST', `${GRAPH}/vppTokens`, { token: sToken })).json();
  }

  async renewToken(id: string, sToken: string): Promise<void> {
    await this.call('PATCH', `${GRAPH}/vppTokens/${encodeURIComponent(id)}`, { token: sToken });
  }

  async deleteToken(id: string): Promise<void> {
    await this.call('DELETE', `${GRAPH}/vppTokens/${encodeURIComponent(id)}`);
  }

  async syncLicenses(id: string): Promise<void> {
    await this.call('POST', `${GRAPH}/vppTokens/${encodeURIComponent(id)}/syncLicenses`);
  }

  // With `untracked`, each app carries its untracked-licence count (UNTRACKED_COUNT).
  apps(untracked = false): Promise<MobileApp[]> {
    return this.list<MobileApp>(`${GRAPH}/mobileApps`, untracked ? ASK_UNTRACKED : undefined);
  }

  ebooks(untracked = false): Promise<ManagedEBook[]> {
    return this.list<ManagedEBook>(`${GRAPH}/managedEBooks`, untracked ? ASK_UNTRACKED : undefined);
  }

  // The licences Apple holds for an app or a book that vppd did not grant.
  untrackedLicenses(kind: 'app' | 'book', id: string): Promise<UntrackedLicense[]> {
    const set = kind === 'book' ? 'managedEBooks' : 'mobileApps';
    return this.list<UntrackedLicense>(`${GRAPH}/${set}/${encodeURIComponent(id)}/vppd.untrackedLicenses()`);
  }

  appAssignments(appId: string): Promise<AppAssignment[]> {
    return this.list<AppAssignment>(`${GRAPH}/mobileApps/${encodeURIComponent(appId)}/assignments`);
  }

  deviceStatuses(appId: string): Promise<DeviceStatus[]> {
    return this.list<DeviceStatus>(`${GRAPH}/mobileApps/${encodeURIComponent(appId)}/deviceStatuses`);
  }

  userStatuses(appId: string): Promise<UserStatus[]> {
    return this.list<UserStatus>(`${GRAPH}/mobileApps/${encodeURIComponent(appId)}/userStatuses`);
  }

  // The directory's routes sit beside deviceAppManagement, under the same version.
  vppUserStatus(userId: string): Promise<VppUserStatus> {
    return this.get<VppUserStatus>(`${DIRECTORY}/users/${encodeURIComponent(userId)}/vppUserStatus`);
  }

  group(id: string): Promise<Group> {
    return this.get<Group>(`${DIRECTORY}/groups/${encodeURIComponent(id)}`);
  }

  assignedLicenses(app: MobileApp): Promise<AssignedLicense[]> {
    const cast = app['@odata.type'].replace(/^#/, '');
    return this.list<AssignedLicense>(`${GRAPH}/mobileApps/${encodeURIComponent(app.id)}/${cast}/assignedLicenses`);
  }
}

function sameOriginPath(link: string): string {
  const url = new URL(link, window.location.href);
  return url.pathname + url.search;
}

// The text of a .vpptoken file as Graph's `token` property takes it: the file is already
// base64 (of Apple's JSON); a file holding the JSON itself is encoded here.
export function sTokenFromFile(text: string): string {
  const trimmed = text.trim();
  if (trimmed.startsWith('{')) {
    let binary = '';
    for (const byte of new TextEncoder().encode(trimmed)) binary += String.fromCharCode(byte);
    return btoa(binary);
  }
  return trimmed.replace(/\s+/g, '');
}
