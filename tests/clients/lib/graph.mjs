// The Graph beta SDK's own request pipeline pointed at vppd, as its generated request
// builders use it: GraphBetaRequestAdapter (msgraph-sdk-core's default middleware, which
// sends the SdkVersion header; kiota-bundle's JsonParseNodeFactory for responses), a
// RequestInformation per call with the builders' URL templates, and the error mapping
// {XXX: createODataErrorFromDiscriminatorValue}. The beta SDK on npm ships the models only
// (its deviceAppManagement request builders are not published as a package), so the URL
// templates below are copied from the generated builders; everything else is the packages'.
//
// Environment (set by servers.py): VPPD_URL, VPPD_TOKEN, VPPD_READ_TOKEN, VPPD_EXPIRED_TOKEN, SIM_URL.
import {
  AllowedHostsValidator,
  BaseBearerTokenAuthenticationProvider,
  HttpMethod,
  RequestInformation,
} from "@microsoft/kiota-abstractions";
import { GraphBetaRequestAdapter } from "@microsoft/msgraph-beta-sdk/graphBetaRequestAdapter.js";
import { version as betaSdkVersion } from "@microsoft/msgraph-beta-sdk/version.js";
import { createODataErrorFromDiscriminatorValue } from "@microsoft/msgraph-beta-sdk/models/oDataErrors/index.js";
import { createGraphClientFactory } from "@microsoft/msgraph-sdk-core";
import { GraphRequestAdapter, createGraphServiceClient } from "@microsoft/msgraph-sdk";
import { version as v1SdkVersion } from "@microsoft/msgraph-sdk/version.js";
import "@microsoft/msgraph-sdk-users"; // the fluent API of /users (client.users…)

export { HttpMethod };

function required(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run the suite through tests/clients/run`);
  return v;
}

export const env = {
  get vppdUrl() { return required("VPPD_URL"); },
  get token() { return required("VPPD_TOKEN"); },
  get readToken() { return required("VPPD_READ_TOKEN"); },
  get expiredToken() { return required("VPPD_EXPIRED_TOKEN"); },
  get simUrl() { return required("SIM_URL"); },
};

// URL templates of the beta SDK's generated request builders (Kiota, msgraph-beta-sdk-*).
const LIST_QUERY = "{?%24count,%24expand,%24filter,%24orderby,%24search,%24select,%24skip,%24top}";
export const T = {
  vppTokens: "{+baseurl}/deviceAppManagement/vppTokens" + LIST_QUERY,
  vppToken: "{+baseurl}/deviceAppManagement/vppTokens/{vppToken%2Did}{?%24expand,%24select}",
  syncLicenses: "{+baseurl}/deviceAppManagement/vppTokens/{vppToken%2Did}/syncLicenses",
  revokeLicenses: "{+baseurl}/deviceAppManagement/vppTokens/{vppToken%2Did}/revokeLicenses",
  getLicensesForApp:
    "{+baseurl}/deviceAppManagement/vppTokens/getLicensesForApp(bundleId='{bundleId}'){?%24count,%24filter,%24search,%24skip,%24top}",
  mobileApps: "{+baseurl}/deviceAppManagement/mobileApps" + LIST_QUERY,
  mobileAppsAsIosVppApp: "{+baseurl}/deviceAppManagement/mobileApps/graph.iosVppApp" + LIST_QUERY,
  mobileAppsAsMacOsVppApp: "{+baseurl}/deviceAppManagement/mobileApps/graph.macOsVppApp" + LIST_QUERY,
  mobileApp: "{+baseurl}/deviceAppManagement/mobileApps/{mobileApp%2Did}{?%24expand,%24select}",
  mobileAppAsIosVppApp: "{+baseurl}/deviceAppManagement/mobileApps/{mobileApp%2Did}/graph.iosVppApp{?%24expand,%24select}",
  mobileAppAsMacOsVppApp:
    "{+baseurl}/deviceAppManagement/mobileApps/{mobileApp%2Did}/graph.macOsVppApp{?%24expand,%24select}",
  iosAssignedLicenses:
    "{+baseurl}/deviceAppManagement/mobileApps/{mobileApp%2Did}/graph.iosVppApp/assignedLicenses" + LIST_QUERY,
  macAssignedLicenses:
    "{+baseurl}/deviceAppManagement/mobileApps/{mobileApp%2Did}/graph.macOsVppApp/assignedLicenses" + LIST_QUERY,
  assignments: "{+baseurl}/deviceAppManagement/mobileApps/{mobileApp%2Did}/assignments" + LIST_QUERY,
  assign: "{+baseurl}/deviceAppManagement/mobileApps/{mobileApp%2Did}/assign",
  deviceStatuses: "{+baseurl}/deviceAppManagement/mobileApps/{mobileApp%2Did}/deviceStatuses" + LIST_QUERY,
  managedEBooks: "{+baseurl}/deviceAppManagement/managedEBooks" + LIST_QUERY,
  managedEBook: "{+baseurl}/deviceAppManagement/managedEBooks/{managedEBook%2Did}{?%24expand,%24select}",
  managedEBookAssignments:
    "{+baseurl}/deviceAppManagement/managedEBooks/{managedEBook%2Did}/assignments" + LIST_QUERY,
  managedEBookAssignment:
    "{+baseurl}/deviceAppManagement/managedEBooks/{managedEBook%2Did}/assignments/{managedEBookAssignment%2Did}{?%24expand,%24select}",
  managedEBookAssign: "{+baseurl}/deviceAppManagement/managedEBooks/{managedEBook%2Did}/assign",
  managedEBookUserStateSummary:
    "{+baseurl}/deviceAppManagement/managedEBooks/{managedEBook%2Did}/userStateSummary" + LIST_QUERY,
  managedEBookDeviceStates:
    "{+baseurl}/deviceAppManagement/managedEBooks/{managedEBook%2Did}/deviceStates" + LIST_QUERY,
  managedEBookInstallSummary:
    "{+baseurl}/deviceAppManagement/managedEBooks/{managedEBook%2Did}/installSummary{?%24expand,%24select}",
  // The directory: the templates Kiota generates for groups, devices and managedDevices (their
  // builder packages are not published for JavaScript either).
  groups: "{+baseurl}/groups" + LIST_QUERY,
  groupMembers: "{+baseurl}/groups/{group%2Did}/members" + LIST_QUERY,
  groupMembersRef: "{+baseurl}/groups/{group%2Did}/members/$ref",
  groupMemberRef: "{+baseurl}/groups/{group%2Did}/members/{directoryObject%2Did}/$ref",
  devices: "{+baseurl}/devices" + LIST_QUERY,
  managedDevices: "{+baseurl}/deviceManagement/managedDevices" + LIST_QUERY,
  managedDevice: "{+baseurl}/deviceManagement/managedDevices/{managedDevice%2Did}{?%24expand,%24select}",
};

// The generated builders' query parameter mapper.
const QUERY_MAPPER = {
  count: "%24count", expand: "%24expand", filter: "%24filter", orderby: "%24orderby",
  search: "%24search", select: "%24select", skip: "%24skip", top: "%24top",
};

export const ERROR_MAPPING = { XXX: createODataErrorFromDiscriminatorValue };

function bodyText(body) {
  if (body === undefined || body === null) return "";
  if (typeof body === "string") return body;
  return new TextDecoder().decode(body);
}

// Every HTTP exchange of a client, recorded (request headers, status and the raw body) so tests
// can compare the typed model with the JSON it came from.
function recorder() {
  const exchanges = [];
  const recordingFetch = async (url, init) => {
    const response = await fetch(url, init);
    const body = await response.clone().text();
    exchanges.push({
      url: String(url),
      method: init?.method ?? "GET",
      requestHeaders: new Headers(init?.headers ?? {}),
      requestBody: bodyText(init?.body),
      status: response.status,
      headers: response.headers,
      body,
    });
    return response;
  };
  return {
    exchanges,
    recordingFetch,
    last() {
      if (exchanges.length === 0) throw new Error("no request was sent");
      return exchanges[exchanges.length - 1];
    },
    lastJson() {
      return JSON.parse(this.last().body);
    },
  };
}

function authFor(vppdUrl, token) {
  const host = new URL(vppdUrl).host;
  return new BaseBearerTokenAuthenticationProvider({
    getAuthorizationToken: async () => token,
    getAllowedHostsValidator: () => new AllowedHostsValidator(new Set([host])),
  });
}

// A beta SDK client for vppd (the suite's, or `vppdUrl`), recording every exchange.
export function betaClient(token = env.token, vppdUrl = env.vppdUrl) {
  const rec = recorder();
  const httpClient = createGraphClientFactory(
    { graphServiceTargetVersion: "beta", graphServiceLibraryClientVersion: betaSdkVersion },
    rec.recordingFetch,
  );
  const adapter = new GraphBetaRequestAdapter(authFor(vppdUrl, token), undefined, undefined, httpClient);
  adapter.baseUrl = `${vppdUrl}/beta`;
  return { adapter, ...rec };
}

// The v1.0 SDK's own fluent client (@microsoft/msgraph-sdk's GraphServiceClient with the
// request builders @microsoft/msgraph-sdk-users adds: `client.graph.users.post(…)`), for the
// parts of the surface whose builders Microsoft publishes on npm, recording every exchange.
export function v1Client(token = env.token, vppdUrl = env.vppdUrl) {
  const rec = recorder();
  const httpClient = createGraphClientFactory(
    { graphServiceTargetVersion: "v1.0", graphServiceLibraryClientVersion: v1SdkVersion },
    rec.recordingFetch,
  );
  const adapter = new GraphRequestAdapter(authFor(vppdUrl, token), undefined, undefined, httpClient);
  adapter.baseUrl = `${vppdUrl}/v1.0`;
  return { adapter, graph: createGraphServiceClient(adapter), ...rec };
}

// Builds the RequestInformation a generated builder would: template, path parameters, query
// options through the builders' mapper, Accept: application/json, an optional Parsable body.
export function requestInfo(client, method, template, pathParameters = {}, options = {}) {
  const info = new RequestInformation(method, template, { baseurl: client.adapter.baseUrl, ...pathParameters });
  info.configure({ queryParameters: options.query, headers: options.headers }, QUERY_MAPPER);
  info.headers.tryAdd("Accept", "application/json");
  if (options.body !== undefined) {
    info.setContentFromParsable(client.adapter, "application/json", options.body, options.serializer);
  }
  return info;
}

// adapter.send with the builders' error mapping; resolves to the typed model.
export function send(client, method, template, pathParameters, factory, options) {
  return client.adapter.send(requestInfo(client, method, template, pathParameters, options), factory, ERROR_MAPPING);
}

export function sendNoContent(client, method, template, pathParameters, options) {
  return client.adapter.sendNoResponseContent(
    requestInfo(client, method, template, pathParameters, options),
    ERROR_MAPPING,
  );
}

// Runs `fn`, expects it to throw the ODataError the adapter builds from a vppd error body.
export async function expectODataError(fn) {
  try {
    await fn();
  } catch (e) {
    return e;
  }
  throw new Error("expected the call to fail with an ODataError");
}

// The simulator's control API (plain fetch: it is not a Graph endpoint).
export async function simControl(method, path, body) {
  const response = await fetch(`${env.simUrl}/_sim/${path}`, {
    method,
    headers: body === undefined ? {} : { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`sim ${method} ${path}: ${response.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

// A new Apple location with its own sToken (each vppd token needs a location of its own).
export async function newLocation(assets = 8, assignments = 40) {
  return simControl("POST", "locations", { assets, assignments });
}

// The simulator's request counters of one location ({"METHOD /path": n}).
export async function simCounters(uId) {
  return (await simControl("GET", "counters")).byLocation?.[uId] ?? {};
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Every asset of a location as Apple's API (the simulator) lists it, walking its pages.
export async function appleAssets(sToken) {
  const assets = [];
  for (let page = 0; page !== undefined;) {
    const response = await fetch(`${env.simUrl}/mdm/v2/assets?pageIndex=${page}`, {
      headers: { Authorization: `Bearer ${sToken}` },
      signal: AbortSignal.timeout(10_000),
    });
    if (!response.ok) throw new Error(`sim assets: ${response.status}`);
    const body = await response.json();
    assets.push(...(body.assets ?? []));
    page = body.nextPageIndex;
  }
  return assets;
}

// Every assignment Apple (the simulator) holds for a location, walking its pages; `query` filters
// as Apple's API does (e.g. "adamId=…").
export async function appleAssignments(sToken, query = "") {
  const out = [];
  for (let page = 0; page !== undefined;) {
    const response = await fetch(`${env.simUrl}/mdm/v2/assignments?${query}${query ? "&" : ""}pageIndex=${page}`, {
      headers: { Authorization: `Bearer ${sToken}` },
      signal: AbortSignal.timeout(10_000),
    });
    if (!response.ok) throw new Error(`sim assignments: ${response.status}`);
    const body = await response.json();
    out.push(...(body.assignments ?? []));
    page = body.nextPageIndex;
  }
  return out;
}
