#!/usr/bin/env node
// Offline Kubernetes validation of what `veil apply -f Meshfile` writes and of the charts, as
// rendered by real Helm (`helm template`).
//
//   node validate.mjs --manifests DIR                 every DIR/*.yaml (target/manifests)
//   node validate.mjs --rendered FILE [--compare DIR] the output of `helm template`; with
//                     --compare, each object equals the one of DIR/<its template's file name>
//                     (target/manifests: veil renders them itself), but for the label
//                     app.kubernetes.io/managed-by, which is Helm's there and veil's here
//   node validate.mjs --distinct FILE FILE            two `helm template` outputs (two releases in
//                     one namespace) share no kind and name
//
// Every object is checked in three layers, and any finding fails it:
//   1. schema: the kubernetes-models class for its apiVersion/kind, `.validate()` (the OpenAPI
//      schema: types, required fields, enums);
//   2. fields: every field must exist in that kind's API (the OpenAPI schema allows unknown fields;
//      `kubectl apply`, which validates strictly, does not). The field lists come from the
//      package's own type declarations;
//   3. rules: the apiserver rules the schema cannot express (name and label syntax, port name
//      syntax, selector matches template, ...) and, across the objects of one directory, that a
//      Service's named targetPort exists in the pods it selects.
// Findings that Kubernetes would accept but that cannot work as intended are printed as warnings.
//
// YAML is read the way Kubernetes reads it (sigs.k8s.io/yaml, i.e. YAML 1.1 scalars): `yes`, `on`,
// `n` are booleans and `0755` is octal, so an unquoted scalar that kubectl would read as something
// else fails here too.
//
// Exit status: 0 all valid, 1 any failure, 2 usage error.

import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { isDeepStrictEqual } from "node:util";
import yaml from "js-yaml";

// ---------------------------------------------------------------- YAML as Kubernetes reads it

// go-yaml v2 resolution of plain scalars (YAML 1.1), which kubectl and Helm use.
const nullType = new yaml.Type("tag:yaml.org,2002:null", {
  kind: "scalar",
  resolve: (s) => s === "" || s === "~" || s === "null" || s === "Null" || s === "NULL",
  construct: () => null,
  predicate: (v) => v === null,
  represent: { canonical: () => "null" },
  defaultStyle: "canonical",
});

const TRUE_WORDS = ["y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"];
const FALSE_WORDS = ["n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"];
const boolType = new yaml.Type("tag:yaml.org,2002:bool", {
  kind: "scalar",
  resolve: (s) => TRUE_WORDS.includes(s) || FALSE_WORDS.includes(s),
  construct: (s) => TRUE_WORDS.includes(s),
  predicate: (v) => typeof v === "boolean",
  represent: { lowercase: (v) => (v ? "true" : "false") },
  defaultStyle: "lowercase",
});

// strconv.ParseInt(s with '_' removed, 0, 64): 0x.., 0o.., 0b.., leading 0 = octal.
function parseGoInt(s) {
  const m = /^([-+]?)(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)$/.exec(
    s.replaceAll("_", ""),
  );
  if (!m) return null;
  let body = m[2];
  let n;
  if (/^0[xX]/.test(body)) n = parseInt(body.slice(2), 16);
  else if (/^0[oO]/.test(body)) n = parseInt(body.slice(2), 8);
  else if (/^0[bB]/.test(body)) n = parseInt(body.slice(2), 2);
  else if (body.length > 1 && body[0] === "0") n = parseInt(body.slice(1), 8);
  else n = parseInt(body, 10);
  return m[1] === "-" ? -n : n;
}
const intType = new yaml.Type("tag:yaml.org,2002:int", {
  kind: "scalar",
  resolve: (s) => /^[-+]?[0-9]/.test(s) && parseGoInt(s) !== null,
  construct: (s) => parseGoInt(s),
  predicate: (v) => Number.isInteger(v),
  represent: { decimal: (v) => v.toString(10) },
  defaultStyle: "decimal",
});

const KUBE_YAML = new yaml.Schema({
  implicit: [nullType, boolType, intType, yaml.types.float, yaml.types.timestamp, yaml.types.merge],
  explicit: [yaml.types.binary, yaml.types.omap, yaml.types.pairs, yaml.types.set],
});

function loadDocs(text, file) {
  // Empty documents (a bare `---`) are skipped, as kubectl does.
  return yaml.loadAll(text, null, { schema: KUBE_YAML, filename: file }).filter((d) => d != null);
}

function yamlFiles(dir) {
  return fs
    .readdirSync(dir)
    .filter((f) => /\.ya?ml$/.test(f))
    .sort();
}

const isMap = (v) => v !== null && typeof v === "object" && !Array.isArray(v) && !(v instanceof Date);

// ---------------------------------------------------------------- kind -> kubernetes-models class

const modelCache = new Map();
async function modelFor(apiVersion, kind) {
  if (typeof apiVersion !== "string" || typeof kind !== "string")
    throw new Error("object has no string apiVersion and kind");
  if (!/^([a-z0-9][a-z0-9.-]*\/)?v[0-9][a-z0-9]*$/.test(apiVersion) || !/^[A-Z][A-Za-z0-9]*$/.test(kind))
    throw new Error(`unknown apiVersion/kind ${apiVersion} ${kind}`);
  const key = `${apiVersion} ${kind}`;
  if (!modelCache.has(key)) {
    let mod;
    try {
      mod = await import(`kubernetes-models/${apiVersion}`);
    } catch {
      mod = null;
    }
    const cls = mod && mod[kind];
    if (typeof cls !== "function" || cls.apiVersion !== apiVersion || cls.kind !== kind)
      throw new Error(`unknown apiVersion/kind ${apiVersion} ${kind} (no kubernetes-models class for it)`);
    modelCache.set(key, cls);
  }
  return modelCache.get(key);
}

// ---------------------------------------------------------------- unknown fields, from the .d.ts

// Each model ships a .d.ts whose `export interface IName { "field"?: Type; ... }` lists exactly
// the fields of the OpenAPI definition. We read those (a regular, generated format) to know the
// allowed field names at every level.
const dtsCache = new Map();
function loadDts(file) {
  if (dtsCache.has(file)) return dtsCache.get(file);
  const mod = { file, imports: new Map(), interfaces: new Map(), exported: new Map(), aliases: new Map() };
  dtsCache.set(file, mod);
  const lines = fs.readFileSync(file, "utf8").split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    let m;
    if ((m = /^import \{([^}]*)\} from "([^"]+)";/.exec(line))) {
      for (const part of m[1].split(",")) {
        const [name, as] = part.trim().split(/\s+as\s+/);
        if (name) mod.imports.set(as || name, { name, spec: m[2] });
      }
    } else if ((m = /^export interface (\w+)(?: extends ([\w, ]+))? \{$/.exec(line))) {
      const iface = { props: new Map(), index: null, typeMeta: /\bTypeMeta\b/.test(m[2] || "") };
      for (i++; i < lines.length && lines[i] !== "}"; i++) {
        let p;
        if ((p = /^ {4}(?:"([^"]+)"\??|\[key: string\]): (.*)$/.exec(lines[i]))) {
          let type = p[2];
          if (type === "{")
            for (i++; i < lines.length && !/^ {4}\};?$/.test(lines[i]); i++) type += " " + lines[i].trim();
          if (type !== p[2]) type += " }";
          type = type.replace(/;$/, "");
          if (p[1] === undefined) iface.index = type;
          else iface.props.set(p[1], type);
        }
      }
      mod.interfaces.set(m[1], iface);
    } else if ((m = /^export type \{([^}]*)\}/.exec(line))) {
      for (const part of m[1].split(",")) {
        const [local, as] = part.trim().split(/\s+as\s+/);
        if (local) mod.exported.set(as || local, local);
      }
    } else if ((m = /^export type (\w+) = (.*);$/.exec(line))) {
      mod.aliases.set(m[1], m[2]);
    }
  }
  return mod;
}

// The packages map every "./sub/path" export 1:1 to "./sub/path.d.ts" (types) and ".js".
const NODE_MODULES = path.join(path.dirname(fileURLToPath(import.meta.url)), "node_modules");
function resolveSpec(spec, fromFile) {
  let js;
  if (spec.startsWith(".")) js = path.resolve(path.dirname(fromFile), spec);
  else if (typeof import.meta.resolve === "function") js = fileURLToPath(import.meta.resolve(spec));
  else js = path.join(NODE_MODULES, spec); // Node.js before 20.6
  return js.replace(/\.js$/, "") + ".d.ts";
}

// A type string -> {iface}, {array}, {map} or {leaf} (not checked further).
function parseType(t, mod) {
  t = t.trim();
  let m;
  if ((m = /^Array<(.*)>$/.exec(t))) return { array: parseType(m[1], mod) };
  if ((m = /^\{ \[key: string\]: (.*?);? \}$/.exec(t))) return { map: parseType(m[1], mod) };
  if (/^\w+$/.test(t)) return resolveName(t, mod);
  return { leaf: t }; // primitives, literal unions
}

function resolveName(name, mod) {
  if (["string", "number", "boolean", "any", "unknown", "object", "null"].includes(name)) return { leaf: name };
  if (mod.interfaces.has(name)) return { iface: mod.interfaces.get(name), mod, name };
  if (mod.aliases.has(name)) return parseType(mod.aliases.get(name), mod);
  if (mod.imports.has(name)) {
    const imp = mod.imports.get(name);
    if (imp.spec.startsWith("@kubernetes-models/base")) return { leaf: name };
    const target = loadDts(resolveSpec(imp.spec, mod.file));
    const local = target.exported.get(imp.name) || imp.name;
    return resolveName(local, target);
  }
  return { leaf: name }; // unknown to us: not checked
}

function unknownFields(value, type, at, out) {
  if (value == null || type.leaf) return;
  if (type.array) {
    if (Array.isArray(value)) value.forEach((v, i) => unknownFields(v, type.array, `${at}[${i}]`, out));
  } else if (type.map) {
    if (isMap(value)) for (const [k, v] of Object.entries(value)) unknownFields(v, type.map, `${at}.${k}`, out);
  } else if (type.iface && isMap(value)) {
    const { iface, mod } = type;
    for (const [k, v] of Object.entries(value)) {
      const where = at ? `${at}.${k}` : k;
      if (iface.props.has(k)) unknownFields(v, parseType(iface.props.get(k), mod), where, out);
      else if (iface.index) unknownFields(v, parseType(iface.index, mod), where, out);
      else if (!(iface.typeMeta && (k === "apiVersion" || k === "kind")))
        out.push(`unknown field "${where}"`);
    }
  }
}

function checkFields(obj) {
  const { apiVersion, kind } = obj;
  const dts = resolveSpec(`kubernetes-models/${apiVersion}/${kind}`, "");
  const root = resolveName(`I${kind}`, loadDts(dts));
  // If the declaration format ever changes, say so instead of silently checking nothing.
  if (!root.iface || !root.iface.props.has("metadata")) throw new Error(`no interface I${kind} with fields in ${dts}`);
  const out = [];
  unknownFields(obj, root, "", out);
  return out;
}

// ---------------------------------------------------------------- apiserver rules

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const QUALIFIED_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const ENV_VAR_NAME = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/; // the rule of every release before 1.34

const isLabel = (s) => typeof s === "string" && s.length <= 63 && DNS1123_LABEL.test(s);
const isSubdomain = (s) => typeof s === "string" && s.length <= 253 && DNS1123_SUBDOMAIN.test(s);
const isDns1035 = (s) => typeof s === "string" && s.length <= 63 && DNS1035_LABEL.test(s);
const isIanaSvcName = (s) =>
  typeof s === "string" && s.length <= 15 && DNS1123_LABEL.test(s) && /[a-z]/.test(s) && !s.includes("--");
const isPort = (n) => Number.isInteger(n) && n >= 1 && n <= 65535;

function isQualifiedName(k) {
  if (typeof k !== "string") return false;
  const parts = k.split("/");
  if (parts.length > 2) return false;
  const name = parts.pop();
  if (parts.length && !isSubdomain(parts[0])) return false;
  return name.length <= 63 && QUALIFIED_NAME.test(name);
}

function checkLabels(labels, at, errs) {
  if (!isMap(labels)) return;
  for (const [k, v] of Object.entries(labels)) {
    if (!isQualifiedName(k)) errs.push(`${at}: label key "${k}" is not a qualified name`);
    if (typeof v === "string" && (v.length > 63 || !LABEL_VALUE.test(v)))
      errs.push(`${at}.${k}: label value ${JSON.stringify(v)} is not a valid label value`);
  }
}

function checkMeta(obj, nameOk, nameRule, r) {
  const md = obj.metadata || {};
  if (!md.name) r.errors.push("metadata.name: required");
  else if (!nameOk(md.name)) r.errors.push(`metadata.name: "${md.name}" is not a ${nameRule}`);
  if (md.namespace !== undefined && !isLabel(md.namespace))
    r.errors.push(`metadata.namespace: "${md.namespace}" is not a DNS-1123 label`);
  checkLabels(md.labels, "metadata.labels", r.errors);
  if (isMap(md.annotations))
    for (const k of Object.keys(md.annotations))
      if (!isQualifiedName(k)) r.errors.push(`metadata.annotations: key "${k}" is not a qualified name`);
}

function selectorMatches(sel, labels) {
  labels = labels || {};
  for (const [k, v] of Object.entries(sel.matchLabels || {})) if (labels[k] !== v) return false;
  for (const e of sel.matchExpressions || []) {
    const has = Object.hasOwn(labels, e.key);
    const inValues = has && (e.values || []).includes(labels[e.key]);
    if (e.operator === "In" && !inValues) return false;
    if (e.operator === "NotIn" && inValues) return false;
    if (e.operator === "Exists" && !has) return false;
    if (e.operator === "DoesNotExist" && has) return false;
  }
  return true;
}

// ValidateSecurityContext and the AppArmor profile rules of the apiserver. It compares the added
// capability with "CAP_SYS_ADMIN" literally; the runtimes read "SYS_ADMIN" as the same
// capability, so both spellings are refused here.
const APPARMOR_TYPES = ["RuntimeDefault", "Unconfined", "Localhost"];
function checkSecurityContext(sc, at, r) {
  if (!isMap(sc)) return;
  const added = (sc.capabilities?.add || []).map(String);
  if (sc.allowPrivilegeEscalation === false) {
    if (sc.privileged === true)
      r.errors.push(`${at}: cannot set \`allowPrivilegeEscalation\` to false and \`privileged\` to true`);
    if (added.some((c) => c === "CAP_SYS_ADMIN" || c === "SYS_ADMIN"))
      r.errors.push(`${at}: cannot set \`allowPrivilegeEscalation\` to false and \`capabilities.Add\` CAP_SYS_ADMIN`);
  }
  const aa = sc.appArmorProfile;
  if (isMap(aa)) {
    if (!APPARMOR_TYPES.includes(aa.type))
      r.errors.push(`${at}.appArmorProfile.type: ${JSON.stringify(aa.type)} is not one of ${APPARMOR_TYPES.join(", ")}`);
    if (aa.type === "Localhost" && !aa.localhostProfile)
      r.errors.push(`${at}.appArmorProfile.localhostProfile: required when type is Localhost`);
    if (aa.type !== "Localhost" && aa.localhostProfile !== undefined)
      r.errors.push(`${at}.appArmorProfile.localhostProfile: may only be set when type is Localhost`);
  }
}

// claims: the names of a StatefulSet's volumeClaimTemplates, which containers may mount too.
function checkPodSpec(spec, at, r, claims = []) {
  if (!isMap(spec)) return;
  const volumes = (spec.volumes || []).map((v) => v.name);
  volumes.forEach((v, i) => {
    if (!isLabel(v)) r.errors.push(`${at}.volumes[${i}].name: "${v}" is not a DNS-1123 label`);
    if (volumes.indexOf(v) !== i) r.errors.push(`${at}.volumes[${i}].name: duplicate "${v}"`);
  });
  const containers = spec.containers || [];
  if (!containers.length) r.errors.push(`${at}.containers: at least one container is required`);
  const all = [...(spec.initContainers || []), ...containers];
  const names = new Set();
  const portNames = new Set();
  all.forEach((c, i) => {
    const cat = `${at}.${i < (spec.initContainers || []).length ? "initContainers" : "containers"}[${i}]`;
    if (!isLabel(c.name)) r.errors.push(`${cat}.name: "${c.name}" is not a DNS-1123 label`);
    if (names.has(c.name)) r.errors.push(`${cat}.name: duplicate container name "${c.name}"`);
    names.add(c.name);
    if (!c.image) r.errors.push(`${cat}.image: required`);
    (c.ports || []).forEach((p, k) => {
      if (typeof p.containerPort === "number" && !isPort(p.containerPort)) r.errors.push(`${cat}.ports[${k}].containerPort: ${p.containerPort} is not 1-65535`);
      if (typeof p.hostPort === "number" && !isPort(p.hostPort)) r.errors.push(`${cat}.ports[${k}].hostPort: not 1-65535`);
      if (p.name !== undefined) {
        if (!isIanaSvcName(p.name)) r.errors.push(`${cat}.ports[${k}].name: "${p.name}" is not an IANA_SVC_NAME`);
        if (portNames.has(p.name)) r.errors.push(`${cat}.ports[${k}].name: duplicate port name "${p.name}"`);
        portNames.add(p.name);
      }
    });
    checkSecurityContext(c.securityContext, `${cat}.securityContext`, r);
    (c.volumeMounts || []).forEach((m, k) => {
      if (!volumes.includes(m.name) && !claims.includes(m.name))
        r.errors.push(`${cat}.volumeMounts[${k}].name: "${m.name}" names no volume of the pod`);
    });
    const defined = [];
    (c.env || []).forEach((e, k) => {
      const eat = `${cat}.env[${k}]`;
      if (!ENV_VAR_NAME.test(e.name || "")) r.errors.push(`${eat}.name: "${e.name}" is not a valid environment variable name`);
      if (e.value !== undefined && e.valueFrom !== undefined) r.errors.push(`${eat}: value and valueFrom are exclusive`);
      if (e.valueFrom !== undefined && Object.keys(e.valueFrom).length !== 1)
        r.errors.push(`${eat}.valueFrom: exactly one source must be set`);
      // $(VAR) expands only to a variable defined earlier in the list; otherwise it stays literal.
      for (const ref of String(e.value ?? "").replace(/\$\$/g, "").matchAll(/\$\(([^)]*)\)/g))
        if (!defined.includes(ref[1]))
          r.errors.push(`${eat}.value: $(${ref[1]}) does not name an earlier variable of this container, it stays literal`);
      defined.push(e.name);
    });
  });
  if (spec.restartPolicy !== undefined && spec.restartPolicy !== "Always" && at.startsWith("spec.template"))
    r.errors.push(`${at}.restartPolicy: only "Always" is allowed in a Deployment`);
  (spec.imagePullSecrets || []).forEach((s, i) => {
    if (!s.name) r.errors.push(`${at}.imagePullSecrets[${i}].name: required`);
    else if (!isSubdomain(s.name))
      r.warnings.push(`${at}.imagePullSecrets[${i}].name: "${s.name}" cannot name a Secret (not a DNS-1123 subdomain), so this pull secret can never be found`);
  });
}

// Deployment, StatefulSet, DaemonSet: a pod template their selector must select.
function checkWorkload(obj, r) {
    checkMeta(obj, isSubdomain, "DNS-1123 subdomain", r);
    const spec = obj.spec || {};
    const tpl = spec.template || {};
    if (spec.replicas !== undefined && spec.replicas < 0) r.errors.push("spec.replicas: must be >= 0");
    checkLabels(tpl.metadata?.labels, "spec.template.metadata.labels", r.errors);
    const sel = spec.selector || {};
    checkLabels(sel.matchLabels, "spec.selector.matchLabels", r.errors);
    if (!Object.keys(sel.matchLabels || {}).length && !(sel.matchExpressions || []).length)
      r.errors.push("spec.selector: must not be empty");
    else if (!selectorMatches(sel, tpl.metadata?.labels))
      r.errors.push("spec.template.metadata.labels: `selector` does not match template `labels`");
    checkPodSpec(tpl.spec, "spec.template.spec", r, (spec.volumeClaimTemplates || []).map((t) => t.metadata?.name));
}

const RULES = {
  "apps/v1 Deployment": checkWorkload,
  "apps/v1 DaemonSet": checkWorkload,
  "apps/v1 StatefulSet"(obj, r) {
    // its name is part of its pods' host names (DNS labels)
    checkMeta(obj, isLabel, "DNS-1123 label", r);
    checkWorkload(obj, r);
    const svc = obj.spec?.serviceName;
    if (svc !== undefined && !isDns1035(svc)) r.errors.push(`spec.serviceName: "${svc}" is not a DNS-1035 label`);
    (obj.spec?.volumeClaimTemplates || []).forEach((t, i) => {
      if (!isLabel(t.metadata?.name)) r.errors.push(`spec.volumeClaimTemplates[${i}].metadata.name: not a DNS-1123 label`);
      const mounted = (obj.spec.template?.spec?.containers || []).some((c) => (c.volumeMounts || []).some((m) => m.name === t.metadata?.name));
      if (!mounted) r.warnings.push(`spec.volumeClaimTemplates[${i}]: no container mounts it`);
    });
  },
  "v1 Service"(obj, r) {
    checkMeta(obj, isDns1035, "DNS-1035 label (a Service name must start with a letter)", r);
    const spec = obj.spec || {};
    checkLabels(spec.selector, "spec.selector", r.errors);
    const ports = spec.ports || [];
    if (!ports.length && spec.type !== "ExternalName" && spec.clusterIP !== "None")
      r.errors.push("spec.ports: at least one port is required");
    const seen = new Set();
    ports.forEach((p, i) => {
      const at = `spec.ports[${i}]`;
      if (typeof p.port === "number" && !isPort(p.port)) r.errors.push(`${at}.port: ${p.port} is not 1-65535`);
      if (ports.length > 1 && !p.name) r.errors.push(`${at}.name: required when there are several ports`);
      if (p.name !== undefined && !isLabel(p.name)) r.errors.push(`${at}.name: "${p.name}" is not a DNS-1123 label`);
      if (p.name && seen.has(p.name)) r.errors.push(`${at}.name: duplicate "${p.name}"`);
      seen.add(p.name);
      const t = p.targetPort;
      if (typeof t === "string" && !isIanaSvcName(t)) r.errors.push(`${at}.targetPort: "${t}" is not an IANA_SVC_NAME`);
      if (typeof t === "number" && !isPort(t)) r.errors.push(`${at}.targetPort: ${t} is not 1-65535`);
    });
  },
};

// Across one directory: a Service should select some pods and its named targetPorts must exist.
function crossChecks(objects) {
  const deployments = objects.filter(
    (o) => o.obj.apiVersion === "apps/v1" && ["Deployment", "StatefulSet", "DaemonSet"].includes(o.obj.kind),
  );
  for (const o of objects) {
    if (o.obj.apiVersion !== "v1" || o.obj.kind !== "Service" || !isMap(o.obj.spec?.selector)) continue;
    const pods = deployments.filter((d) => selectorMatches({ matchLabels: o.obj.spec.selector }, d.obj.spec?.template?.metadata?.labels));
    if (!pods.length) {
      o.warnings.push("spec.selector: selects no Deployment in this set");
      continue;
    }
    (o.obj.spec.ports || []).forEach((p, i) => {
      if (typeof p.targetPort !== "string") return;
      for (const d of pods) {
        const names = (d.obj.spec.template.spec?.containers || []).flatMap((c) => (c.ports || []).map((cp) => cp.name));
        if (!names.includes(p.targetPort))
          o.errors.push(`spec.ports[${i}].targetPort: "${p.targetPort}" names no container port of Deployment ${d.obj.metadata?.name}`);
      }
    });
  }
}

async function checkObject(obj) {
  const r = { obj, errors: [], warnings: [] };
  if (!isMap(obj)) {
    r.errors.push("document is not a mapping");
    return r;
  }
  let cls;
  try {
    cls = await modelFor(obj.apiVersion, obj.kind);
  } catch (e) {
    r.errors.push(e.message);
    return r;
  }
  try {
    new cls(obj).validate();
  } catch (e) {
    r.errors.push(`schema: ${e.message}`);
  }
  try {
    r.errors.push(...checkFields(obj));
  } catch (e) {
    r.errors.push(`internal: cannot read the field list of ${obj.apiVersion} ${obj.kind}: ${e.message}`);
  }
  const rule = RULES[`${obj.apiVersion} ${obj.kind}`];
  if (rule) rule(obj, r);
  else checkMeta(obj, isSubdomain, "DNS-1123 subdomain", r);
  return r;
}

// ---------------------------------------------------------------- driver


let failed = 0;
let passed = 0;
const fail = (msg) => {
  failed++;
  console.log(`FAIL ${msg}`);
};

function describe(obj) {
  if (!isMap(obj)) return "(not a mapping)";
  return `${obj.apiVersion ?? "?"} ${obj.kind ?? "?"} ${obj.metadata?.name ?? "?"}`;
}

function firstDifference(a, b, at = "") {
  if (isDeepStrictEqual(a, b)) return null;
  if (isMap(a) && isMap(b)) {
    for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
      if (!Object.hasOwn(a, k)) return `${at}.${k}: only in the manifest`;
      if (!Object.hasOwn(b, k)) return `${at}.${k}: only in the chart`;
      const d = firstDifference(a[k], b[k], `${at}.${k}`);
      if (d) return d;
    }
  }
  if (Array.isArray(a) && Array.isArray(b)) {
    if (a.length !== b.length) return `${at}: ${a.length} items in the chart, ${b.length} in the manifest`;
    for (let i = 0; i < a.length; i++) {
      const d = firstDifference(a[i], b[i], `${at}[${i}]`);
      if (d) return d;
    }
  }
  return `${at || "(document)"}: chart has ${JSON.stringify(a)}, manifest has ${JSON.stringify(b)}`;
}

// sets: [{label, docs, compareTo?: {label, docs}}]; reports one line per object.
async function report(sets) {
  const checked = [];
  for (const s of sets)
    for (let i = 0; i < s.docs.length; i++) {
      const r = await checkObject(s.docs[i]);
      r.label = `${s.label}#${i + 1}`;
      r.set = s;
      r.index = i;
      checked.push(r);
    }
  crossChecks(checked.filter((r) => isMap(r.obj)));
  for (const r of checked) {
    const cmp = r.set.compareTo;
    if (cmp) {
      if (r.index >= cmp.docs.length) r.errors.push(`not in ${cmp.label} (it has ${cmp.docs.length} objects)`);
      else {
        const d = firstDifference(r.obj, cmp.docs[r.index]);
        if (d) r.errors.push(`differs from ${cmp.label}#${r.index + 1}: ${d}`);
      }
    }
    r.errors = [...new Set(r.errors)];
    r.warnings = [...new Set(r.warnings)];
    const what = `${r.label}: ${describe(r.obj)}`;
    if (r.errors.length) {
      fail(what);
      for (const e of r.errors) console.log(`     ${e}`);
    } else {
      passed++;
      console.log(`ok   ${what}${cmp ? ` (= ${cmp.label}#${r.index + 1})` : ""}`);
    }
    for (const w of r.warnings) console.log(`     warning: ${w}`);
  }
  for (const s of sets)
    if (s.compareTo && s.compareTo.docs.length > s.docs.length)
      fail(`${s.compareTo.label}: has ${s.compareTo.docs.length} objects, ${s.label} renders ${s.docs.length}`);
}

function readDocs(file, label) {
  try {
    return loadDocs(fs.readFileSync(file, "utf8"), label);
  } catch (e) {
    fail(`${label}: ${e.message.split("\n")[0]}`);
    return null;
  }
}

async function validateManifests(dir) {
  const files = yamlFiles(dir);
  if (!files.length) fail(`${dir}: no *.yaml files`);
  const sets = [];
  for (const f of files) {
    const docs = readDocs(path.join(dir, f), path.join(dir, f));
    if (docs && !docs.length) fail(`${path.join(dir, f)}: no objects`);
    if (docs) sets.push({ label: path.join(dir, f), docs });
  }
  await report(sets);
}

// `helm template` output: documents, each after a "# Source: CHART/templates/FILE" line.
function helmDocs(file) {
  let text;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    fail(`${file}: ${e.message}`);
    return null;
  }
  const out = [];
  for (const part of text.split(/^---[ \t]*$/m)) {
    const m = /^# Source: (.+)$/m.exec(part);
    const docs = (() => {
      try {
        return loadDocs(part, file);
      } catch (e) {
        fail(`${file}${m ? ` (${m[1]})` : ""}: ${e.message.split("\n")[0]}`);
        return null;
      }
    })();
    if (!docs) return null;
    for (const d of docs) out.push({ source: m ? m[1] : "(no # Source line)", doc: d });
  }
  return out;
}

// The one label the chart and veil's own rendering set differently: Helm manages one, veil the other.
function normalizeManagedBy(obj, from, to) {
  const fix = (labels) => {
    if (isMap(labels) && labels["app.kubernetes.io/managed-by"] === from) labels["app.kubernetes.io/managed-by"] = to;
  };
  if (!isMap(obj)) return obj;
  const o = structuredClone(obj);
  fix(o.metadata?.labels);
  fix(o.spec?.template?.metadata?.labels);
  return o;
}

async function validateRendered(file, compareDir) {
  const docs = helmDocs(file);
  if (!docs) return;
  if (!docs.length) fail(`${file}: renders no objects`);
  const bySource = new Map();
  for (const { source, doc } of docs) {
    if (!bySource.has(source)) bySource.set(source, []);
    bySource.get(source).push(normalizeManagedBy(doc, "Helm", compareDir ? "veil" : "Helm"));
  }
  const sets = [];
  for (const [source, list] of bySource) {
    const set = { label: `${file}: ${source}`, docs: list };
    if (compareDir) {
      const other = path.join(compareDir, path.basename(source));
      if (!fs.existsSync(other)) fail(`${source}: ${other} does not exist`);
      else {
        const od = readDocs(other, other);
        if (od) set.compareTo = { label: other, docs: od };
      }
    }
    sets.push(set);
  }
  if (compareDir)
    for (const f of yamlFiles(compareDir))
      if (![...bySource.keys()].some((s) => path.basename(s) === f)) fail(`${path.join(compareDir, f)}: the chart renders no ${f}`);
  await report(sets);
}

function validateDistinct(a, b) {
  const ids = (file) => {
    const docs = helmDocs(file);
    if (!docs) return null;
    return new Map(docs.filter((d) => isMap(d.doc)).map((d) => [`${d.doc.kind} ${d.doc.metadata?.name}`, d.source]));
  };
  const ia = ids(a);
  const ib = ids(b);
  if (!ia || !ib) return;
  if (!ia.size || !ib.size) fail(`${!ia.size ? a : b}: renders no objects`);
  for (const [id, source] of ia)
    if (ib.has(id)) fail(`${id}: rendered by both releases (${source}; ${ib.get(id)})`);
    else {
      passed++;
      console.log(`ok   ${id}: only in ${a}`);
    }
}

function usage(msg) {
  if (msg) console.error(`validate.mjs: ${msg}`);
  console.error(
    "usage: node validate.mjs --manifests DIR\n       node validate.mjs --rendered FILE [--compare DIR]\n" +
      "       node validate.mjs --distinct FILE FILE",
  );
  process.exit(2);
}

async function main(argv) {
  const opts = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!["--manifests", "--rendered", "--compare", "--distinct"].includes(a)) usage(`unknown argument ${a}`);
    const n = a === "--distinct" ? 2 : 1;
    if (i + n >= argv.length) usage(`${a} needs ${n === 2 ? "two files" : "an argument"}`);
    opts[a.slice(2)] = argv.slice(i + 1, i + 1 + n);
    i += n;
  }
  const modes = ["manifests", "rendered", "distinct"].filter((m) => opts[m]);
  if (modes.length !== 1) usage("give exactly one of --manifests, --rendered and --distinct");
  if (opts.compare && !opts.rendered) usage("--compare goes with --rendered");
  for (const d of [opts.manifests, opts.compare].filter(Boolean).map((x) => x[0]))
    if (!fs.existsSync(d) || !fs.statSync(d).isDirectory()) usage(`${d} is not a directory`);
  for (const f of [...(opts.rendered || []), ...(opts.distinct || [])])
    if (!fs.existsSync(f) || !fs.statSync(f).isFile()) usage(`${f} is not a file`);
  if (opts.manifests) await validateManifests(opts.manifests[0]);
  else if (opts.rendered) await validateRendered(opts.rendered[0], opts.compare && opts.compare[0]);
  else validateDistinct(...opts.distinct);
  console.log(`validate.mjs: ${passed} valid, ${failed} invalid`);
  process.exit(failed || !passed ? 1 : 0);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main(process.argv.slice(2));
