// Compares an object the beta SDK parsed (kiota JsonParseNode + the generated model) with the
// raw JSON it came from, the way a strict reader would:
//  - every JSON property the model knows must have landed in its typed field with the same value
//    (strings, numbers, booleans equal; dates the same instant; enum members kept — kiota drops a
//    member its enum does not know; nested objects and collections checked recursively, each with
//    the model the SDK chose for it from @odata.type);
//  - additionalData holds only properties the model does not know, and only those the caller
//    allows (`extras`, per @odata.type; list them in `required` too when they must be there); a model property in the wrong case is reported as such;
//    (@odata.context is allowed at the root);
//  - `required` (per @odata.type) names JSON properties that must be present.
// Returns nothing; throws an AssertionError naming the path of the first difference.
import assert from "node:assert/strict";
import { JsonParseNodeFactory } from "@microsoft/kiota-serialization-json";

const factory = new JsonParseNodeFactory();
const encoder = new TextEncoder();

function parseNodeOf(value) {
  return factory.getRootParseNode("application/json", encoder.encode(JSON.stringify(value)).buffer);
}

// Learns what a generated field deserializer reads: the model property it writes, the
// ParseNode method it calls and the argument (enum object or model factory).
function probeField(deserializer) {
  const marker = Symbol("probe");
  let call;
  const record = (kind) => (arg) => {
    call = { kind, arg };
    return marker;
  };
  const fake = new Proxy({}, { get: (_, method) => record(String(method)) });
  const target = {};
  deserializer(target)(fake);
  const prop = Object.keys(target).find((k) => target[k] === marker);
  return { prop, ...call };
}

// The field deserializers the SDK would use for `raw`, given the factory of its declared type.
function fieldsFor(raw, modelFactory) {
  const deserializeInto = modelFactory(parseNodeOf(raw));
  const probe = (key) => probeField((t) => deserializeInto(t)[key]);
  return { keys: new Set(Object.keys(deserializeInto({}))), probe };
}

function sameValue(path, kind, rawValue, typed, arg, options) {
  if (rawValue === null) {
    // kiota's getObjectValue makes an empty model of a null object (mobileAppAssignment.settings).
    const emptyModel = kind === "getObjectValue" && typed !== null && typeof typed === "object" &&
      Object.keys(typed).length === 0;
    assert.ok(typed === undefined || typed === null || emptyModel, `${path}: JSON null parsed as ${String(typed)}`);
    return;
  }
  switch (kind) {
    case "getStringValue":
    case "getGuidValue":
    case "getNumberValue":
    case "getBooleanValue":
      assert.equal(typed, rawValue, `${path}: typed value differs from the JSON`);
      return;
    case "getEnumValue":
      assert.equal(typed, rawValue, `${path}: '${rawValue}' is not a member of the SDK's enum`);
      return;
    case "getDateValue":
      assert.ok(typed instanceof Date && !Number.isNaN(typed.getTime()), `${path}: '${rawValue}' is not a date`);
      assert.equal(typed.getTime(), Date.parse(rawValue), `${path}: date differs`);
      return;
    case "getCollectionOfPrimitiveValues":
    case "getCollectionOfEnumValues":
      assert.deepEqual(typed, rawValue, `${path}: collection differs`);
      return;
    case "getObjectValue":
      checkModel(rawValue, typed, arg, options, path);
      return;
    case "getCollectionOfObjectValues":
      assert.ok(Array.isArray(typed), `${path}: not parsed as a collection`);
      assert.equal(typed.length, rawValue.length, `${path}: length differs`);
      rawValue.forEach((item, i) => checkModel(item, typed[i], arg, options, `${path}[${i}]`));
      return;
    default:
      assert.fail(`${path}: the SDK reads this property with ${kind}, which the checker does not know`);
  }
}

/**
 * @param raw the JSON object vppd sent
 * @param parsed what the SDK made of it
 * @param modelFactory create<Type>FromDiscriminatorValue of the declared type
 * @param options {extras: {"#type": [names]}, required: {"#type": [names]}}
 */
export function checkModel(raw, parsed, modelFactory, options = {}, path = "$") {
  assert.ok(raw && typeof raw === "object" && !Array.isArray(raw), `${path}: not a JSON object`);
  assert.ok(parsed && typeof parsed === "object", `${path}: the SDK produced no object`);
  const type = raw["@odata.type"] ?? "(no @odata.type)";
  const { keys, probe } = fieldsFor(raw, modelFactory);
  const lowerKeys = new Map([...keys].map((k) => [k.toLowerCase(), k]));
  const expectedExtras = new Set(options.extras?.[type] ?? []);
  const unknown = [];
  for (const [key, value] of Object.entries(raw)) {
    if (keys.has(key)) {
      const field = probe(key);
      assert.ok(field.prop, `${path}.${key}: the model has a reader but no property for it`);
      sameValue(`${path}.${key}`, field.kind, value, parsed[field.prop], field.arg, options);
    } else {
      const near = lowerKeys.get(key.toLowerCase());
      assert.equal(near, undefined, `${path}.${key}: the model calls this property '${near}'`);
      unknown.push(key);
    }
  }
  const additional = Object.keys(parsed.additionalData ?? {});
  assert.deepEqual(additional.sort(), [...unknown].sort(), `${path}: additionalData holds other keys than the unknown ones`);
  // @odata.context is a response annotation, not part of any model; it belongs at the root only.
  const unexpected = unknown.filter((k) => !(path === "$" && k === "@odata.context"));
  const notAllowed = unexpected.filter((k) => !expectedExtras.has(k));
  assert.deepEqual(notAllowed, [], `${path} (${type}): properties the SDK's model does not know`);
  for (const name of options.required?.[type] ?? []) {
    assert.ok(Object.hasOwn(raw, name), `${path} (${type}): '${name}' is missing`);
  }
}

// The names of the JSON properties a model knows (for `required` lists).
export function modelKeys(modelFactory, odataType) {
  const deserializeInto = modelFactory(parseNodeOf(odataType ? { "@odata.type": odataType } : {}));
  return Object.keys(deserializeInto({})).filter((k) => k !== "backingStoreEnabled");
}

// Parses a JSON value with kiota's JsonParseNodeFactory into the model, as the SDK's adapter does.
export function parseWithSdk(raw, modelFactory) {
  return parseNodeOf(raw).getObjectValue(modelFactory);
}
