import { Vppd } from "./lib/vppd.mjs";
import { env, newLocation, simControl, sleep } from "./lib/graph.mjs";
const v = await new Vppd({ store: process.argv[2] || "sqlite", args: ["--apple-url", env.simUrl + "/mdm/v2", "--sync-interval-seconds", "0", "--throttle-window-seconds", "0", "--sync-event-poll-ms", "100", "--sync-lease-seconds", "2", "--graph-page-size", "100"] }).start();
const tok = v.devToken("DeviceManagementServiceConfig.ReadWrite.All DeviceManagementApps.ReadWrite.All User.ReadWrite.All Group.ReadWrite.All GroupMember.ReadWrite.All Device.ReadWrite.All DeviceManagementManagedDevices.ReadWrite.All");
async function call(method, path, body) {
  const r = await fetch(v.url + path, { method, headers: { Authorization: "Bearer " + tok, "Content-Type": "application/json" }, body: body && JSON.stringify(body) });
  const t = await r.text();
  console.log(method, path, r.status, t.slice(0, 1500));
  return t ? JSON.parse(t) : null;
}
try {
  const loc = await newLocation(6, 10);
  const t = await call("POST", "/beta/deviceAppManagement/vppTokens", { token: loc.tokens[0].sToken });
  for (;;) { const x = await call("GET", `/beta/deviceAppManagement/vppTokens/${t.id}?$select=lastSyncStatus`); if (x.lastSyncStatus !== "inProgress") break; await sleep(200); }
  const apps = await call("GET", `/beta/deviceAppManagement/mobileApps?$top=50&$filter=vppTokenId eq '${t.id}'`);
  const u = await call("POST", "/v1.0/users", { accountEnabled: true, displayName: "U", mailNickname: "u", userPrincipalName: "u@contoso.com", passwordProfile: { password: "x" } });
  const d = await call("POST", "/beta/devices", { accountEnabled: true, deviceId: "2f1c1a8e-1111-4111-8111-111111111111", displayName: "SER1", operatingSystem: "iPadOS" });
  const m = await call("POST", "/beta/deviceManagement/managedDevices", { serialNumber: "SER1", deviceName: "SER1", azureADDeviceId: d.deviceId, operatingSystem: "iOS", userId: u.id });
  const g = await call("POST", "/beta/groups", { displayName: "G", mailEnabled: false, mailNickname: "g", securityEnabled: true });
  await call("POST", `/beta/groups/${g.id}/members/$ref`, { "@odata.id": `https://graph.microsoft.com/v1.0/directoryObjects/${d.id}` });
  await call("GET", `/beta/groups/${g.id}/members`);
  const ios = apps.value.find((a) => a["@odata.type"] === "#microsoft.graph.iosVppApp" && a.licensingType.supportsDeviceLicensing);
  await call("POST", `/beta/deviceAppManagement/mobileApps/${ios.id}/assign`, { mobileAppAssignments: [{ "@odata.type": "#microsoft.graph.mobileAppAssignment", intent: "required", target: { "@odata.type": "#microsoft.graph.groupAssignmentTarget", groupId: g.id }, settings: { "@odata.type": "#microsoft.graph.iosVppAppAssignmentSettings", useDeviceLicensing: true } }] });
  await call("GET", `/beta/deviceAppManagement/mobileApps/${ios.id}/assignments`);
  await sleep(2000);
  await call("GET", `/beta/deviceAppManagement/mobileApps/${ios.id}/graph.iosVppApp/assignedLicenses?$top=50`);
  await call("POST", `/beta/deviceAppManagement/vppTokens/${t.id}/syncLicenses`);
  for (;;) { const x = await call("GET", `/beta/deviceAppManagement/vppTokens/${t.id}?$select=lastSyncStatus`); if (x.lastSyncStatus !== "inProgress") break; await sleep(200); }
  await call("GET", `/beta/deviceAppManagement/mobileApps/${ios.id}/graph.iosVppApp/assignedLicenses?$top=50`);
  console.log(JSON.stringify(v.tokens()));
} finally { await v.cleanup(); }
