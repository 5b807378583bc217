// Vercel's official TypeScript SDK (@vercel/sdk, Speakeasy-generated from Vercel's OpenAPI,
// every response validated with zod) drives a live emulator through every operation the
// project uses, plus the error paths. One JSON line per SDK call on stdout:
//   {"op": "...", "expect": "ok" | {"status", "code"}, "ok": true|false, "status": N, "detail": "..."}
// and a final {"summary": {...}} line. tests/dev/emulator/test_sdk_judge.py runs it.
//
// Environment: EMULATOR_URL (a running emulator, reset by this script), SDK_PREFIX (the npm
// folder whose node_modules holds @vercel/sdk, i.e. tests/browser).
//
// A call "passes" when the SDK accepts the answer: a success parses under the SDK's zod
// schemas, or an expected error arrives as the SDK's HTTP error (never as a validation
// error) with Vercel's {"error": {"code", "message"}} body and the expected status and code.
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

const base = process.env.EMULATOR_URL;
const prefix = process.env.SDK_PREFIX;
if (!base || !prefix) {
  console.error("EMULATOR_URL and SDK_PREFIX are required");
  process.exit(2);
}
const require = createRequire(`${prefix}/package.json`);
const sdkVersion = require("@vercel/sdk/package.json").version;
// Speakeasy's standalone functions (`@vercel/sdk/funcs/*`) with `VercelCore`: the same
// request building and zod validation as the `Vercel` class, without loading all of the
// SDK (importing its index takes ~12 s here, these ~2 s).
const load = async (path) => import(pathToFileURL(require.resolve(`@vercel/sdk/${path}`)).href);
const { VercelCore } = await load("core.js");
const { unwrapAsync } = await load("types/fp.js");
const OPERATIONS = {
  projects: {
    getProjects: "projectsGetProjects",
    getProject: "projectsGetProject",
    createProjectEnv: "projectsCreateProjectEnv",
    filterProjectEnvs: "projectsFilterProjectEnvs",
    getProjectEnv: "projectsGetProjectEnv",
    editProjectEnv: "projectsEditProjectEnv",
    removeProjectEnv: "projectsRemoveProjectEnv",
    batchRemoveProjectEnv: "projectsBatchRemoveProjectEnv",
  },
  integrations: {
    getConfiguration: "integrationsGetConfiguration",
    getConfigurations: "integrationsGetConfigurations",
    deleteConfiguration: "integrationsDeleteConfiguration",
  },
  teams: { getTeam: "teamsGetTeam", getTeamMembers: "teamsGetTeamMembers" },
  environment: {
    getProjectsByIdOrNameCustomEnvironments: "environmentGetProjectsByIdOrNameCustomEnvironments",
  },
};
const FUNCS = {};
for (const group of Object.values(OPERATIONS)) {
  for (const name of Object.values(group)) {
    FUNCS[name] = (await load(`funcs/${name}.js`))[name];
  }
}

const results = [];
const controlErrors = [];
function emit(line) {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

async function control(method, path, body) {
  const response = await fetch(`${base}/_emulator${path}`, {
    method,
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await response.text();
  if (!response.ok) {
    // Reported, not thrown: the SDK calls after it still run and are counted.
    controlErrors.push(`${method} ${path}: ${response.status} ${text.slice(0, 200)}`);
    emit({ control: `${method} ${path}`, status: response.status, detail: text.slice(0, 200) });
    return null;
  }
  return text ? JSON.parse(text) : null;
}

function sdk(token) {
  // No retries: the 429 path must reach the SDK's error handling, not its backoff.
  const core = new VercelCore({
    bearerToken: token,
    serverURL: base,
    retryConfig: { strategy: "none" },
    timeoutMs: 10_000,
  });
  // `vercel.projects.getProjects(req)` and friends, as the `Vercel` class spells them.
  const client = {};
  for (const [group, names] of Object.entries(OPERATIONS)) {
    client[group] = {};
    for (const [method, func] of Object.entries(names)) {
      client[group][method] = (request) => unwrapAsync(FUNCS[func](core, request));
    }
  }
  return client;
}

// A branch rejected at its root (wrong JSON type) is the least informative.
const score = (lines) => lines.filter((l) => l.startsWith(": ")).length * 1000 + lines.length;

function flatIssues(issues) {
  // A failed union reports "Invalid input"; the branch that came closest says why.
  const out = [];
  for (const issue of issues) {
    const branches = issue.unionErrors ?? [];
    if (branches.length) {
      const best = branches
        .map((b) => flatIssues(b.issues ?? []))
        .sort((a, b) => score(a) - score(b))[0];
      out.push(...best);
    } else {
      out.push(`${(issue.path ?? []).join(".")}: ${issue.message}`);
    }
  }
  return out;
}

function zodIssues(error) {
  return flatIssues(error?.cause?.issues ?? []).slice(0, 8).join("; ");
}

// expect: "ok", or {status, code} for an error answer.
async function call(op, expect, fn, check) {
  const line = { op, expect, ok: false, status: null, detail: "" };
  let value;
  try {
    value = await fn();
    line.status = "ok";
    if (expect !== "ok") {
      line.detail = `expected HTTP ${expect.status}, the SDK returned a value`;
    } else if (check) {
      const problem = check(value);
      line.ok = !problem;
      line.detail = problem || "";
    } else {
      line.ok = true;
    }
  } catch (error) {
    const name = error?.name ?? "Error";
    line.status = error?.statusCode ?? null;
    if (name === "ResponseValidationError" || name === "SDKValidationError") {
      line.detail = `${name}: ${zodIssues(error) || error.message.slice(0, 300)}`;
    } else if (typeof error?.statusCode === "number") {
      let body = null;
      try {
        body = JSON.parse(error.body);
      } catch {
        body = null;
      }
      const code = body?.error?.code;
      const message = body?.error?.message;
      if (expect === "ok") {
        line.detail = `HTTP ${error.statusCode} ${code}: ${message}`;
      } else if (typeof code !== "string" || typeof message !== "string") {
        line.detail = `error body is not {"error": {"code", "message"}}: ${String(error.body).slice(0, 200)}`;
      } else if (error.statusCode !== expect.status || (expect.code && code !== expect.code)) {
        line.detail = `got HTTP ${error.statusCode} ${code}, expected ${expect.status} ${expect.code ?? ""}`;
      } else if (check) {
        const problem = check(body, error);
        line.ok = !problem;
        line.detail = problem || `${code}: ${message}`;
      } else {
        line.ok = true;
        line.detail = `${code}: ${message}`;
      }
    } else {
      line.detail = `${name}: ${String(error?.message ?? error).slice(0, 300)}`;
    }
  }
  results.push(line);
  emit(line);
  return value;
}

const conflict = (code = "ENV_CONFLICT") => ({ status: 400, code });

async function install(scope) {
  const minted = await control("POST", "/oauth/code", { scope });
  const config = await control("GET", "/config");
  const form = new URLSearchParams({
    client_id: config.client_id,
    client_secret: process.env.EMULATOR_CLIENT_SECRET ?? "dev-client-secret-change-me",
    code: minted.code,
    redirect_uri: config.redirect_uri,
  });
  const response = await fetch(`${base}/v2/oauth/access_token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: form,
    signal: AbortSignal.timeout(10_000),
  });
  if (!response.ok) throw new Error(`code exchange: ${response.status} ${await response.text()}`);
  const token = await response.json();
  return { token: token.access_token, teamId: token.team_id, configurationId: token.installation_id };
}

async function pages(vercel, teamId, label) {
  let from;
  let page = 0;
  const names = [];
  const kinds = new Set();
  do {
    page += 1;
    const answer = await call(`projects.getProjects ${label} page ${page}`, "ok", () =>
      vercel.projects.getProjects({ teamId, limit: "2", ...(from === undefined ? {} : { from: String(from) }) }),
    );
    if (!answer || Array.isArray(answer)) break;
    for (const p of answer.projects) names.push(p.name);
    from = answer.pagination?.next ?? undefined;
    if (from !== undefined) kinds.add(typeof from);
  } while (from !== undefined && page < 10);
  return { names, kinds: [...kinds] };
}

async function main() {
  await control("POST", "/reset", {});
  const baseline = await control("GET", "/config");
  const scopes = [...baseline.scopes, "read:team"];
  await control("PATCH", "/config", { scopes });
  const acme = await install("acme");
  const vercel = sdk(acme.token);
  const teamId = acme.teamId;
  const project = "web";

  // -- projects: both paging variants must walk every project exactly once
  const classic = await pages(vercel, teamId, "timestamp");
  await control("PATCH", "/config", { projects_pagination: "token" });
  const tokens = await pages(vercel, teamId, "token");
  await control("PATCH", "/config", { projects_pagination: "timestamp" });
  await call("projects.getProjects paging variants agree", "ok", async () => ({ classic, tokens }), (v) =>
    v.classic.names.length === 5 &&
    v.classic.names.join() === v.tokens.names.join() &&
    v.tokens.kinds.join() === "string" &&
    v.classic.kinds.join() === "number"
      ? ""
      : `timestamp ${JSON.stringify(v.classic)} token ${JSON.stringify(v.tokens)}`,
  );
  const web = await call("projects.getProject by name", "ok", () =>
    vercel.projects.getProject({ idOrName: project, teamId }),
  );
  await call("projects.getProject by id", "ok", () => vercel.projects.getProject({ idOrName: web?.id ?? "x", teamId }));

  // -- env vars: object, array, partial failure, upsert, conflicts
  const one = await call("projects.createProjectEnv object", "ok", () =>
    vercel.projects.createProjectEnv({
      idOrName: project,
      teamId,
      requestBody: { key: "ONE", value: "1", type: "encrypted", target: ["production", "preview"] },
    }),
  );
  const many = await call("projects.createProjectEnv array", "ok", () =>
    vercel.projects.createProjectEnv({
      idOrName: project,
      teamId,
      requestBody: [
        { key: "PLAIN", value: "p", type: "plain", target: ["production", "preview", "development"], comment: "c" },
        { key: "SECRET", value: "s", type: "sensitive", target: ["production", "preview"] },
      ],
    }),
  );
  await call(
    "projects.createProjectEnv array, one item fails (201 + failed[])",
    "ok",
    () =>
      vercel.projects.createProjectEnv({
        idOrName: project,
        teamId,
        requestBody: [
          { key: "ONE", value: "again", type: "encrypted", target: ["production"] },
          { key: "TWO", value: "2", type: "encrypted", target: ["preview"] },
        ],
      }),
    (v) => (v.failed.length === 1 ? "" : `failed: ${JSON.stringify(v.failed)}`),
  );
  await call(
    "projects.createProjectEnv upsert",
    "ok",
    () =>
      vercel.projects.createProjectEnv({
        idOrName: project,
        teamId,
        upsert: "true",
        requestBody: { key: "ONE", value: "1b", type: "encrypted", target: ["production", "preview"] },
      }),
    (v) => (v.failed.length === 0 ? "" : `failed: ${JSON.stringify(v.failed)}`),
  );
  await call("projects.createProjectEnv object conflict", conflict(), () =>
    vercel.projects.createProjectEnv({
      idOrName: project,
      teamId,
      requestBody: { key: "ONE", value: "x", type: "encrypted", target: ["production"] },
    }),
  );
  const allFail = [
    { key: "ONE", value: "x", type: "encrypted", target: ["production"] },
    { key: "TWO", value: "x", type: "encrypted", target: ["preview"] },
  ];
  await call(
    "projects.createProjectEnv array all fail (201 variant)",
    "ok",
    () => vercel.projects.createProjectEnv({ idOrName: project, teamId, requestBody: allFail }),
    (v) => (v.failed.length === 2 ? "" : `failed: ${JSON.stringify(v.failed)}`),
  );
  await control("PATCH", "/config", { env_all_failed: "error" });
  await call(
    "projects.createProjectEnv array all fail (error variant)",
    conflict(),
    () => vercel.projects.createProjectEnv({ idOrName: project, teamId, requestBody: allFail }),
    (body) => (Array.isArray(body.failed) && body.failed.length === 2 ? "" : "no failed[] of 2 in the error body"),
  );
  await control("PATCH", "/config", { env_all_failed: "created", env_conflict_code: "EXISTING_KEY_AND_TARGET" });
  await call("projects.createProjectEnv conflict EXISTING_KEY_AND_TARGET", conflict("EXISTING_KEY_AND_TARGET"), () =>
    vercel.projects.createProjectEnv({
      idOrName: project,
      teamId,
      requestBody: { key: "ONE", value: "x", type: "encrypted", target: ["production"] },
    }),
  );
  await control("PATCH", "/config", { env_conflict_code: baseline.env_conflict_code, env_conflict_status: 403 });
  await call("projects.createProjectEnv conflict as 403 (variant)", { status: 403, code: "ENV_CONFLICT" }, () =>
    vercel.projects.createProjectEnv({
      idOrName: project,
      teamId,
      requestBody: { key: "ONE", value: "x", type: "encrypted", target: ["production"] },
    }),
  );
  await control("PATCH", "/config", { env_conflict_status: baseline.env_conflict_status });

  // -- read, edit, delete
  const listed = await call("projects.filterProjectEnvs", "ok", () =>
    vercel.projects.filterProjectEnvs({ idOrName: project, teamId }),
  );
  const envs = listed && "envs" in listed ? listed.envs : [];
  const byKey = Object.fromEntries(envs.map((e) => [e.key, e]));
  const oneId = byKey.ONE?.id ?? (one?.created && !Array.isArray(one.created) ? one.created.id : "missing");
  const secretId = byKey.SECRET?.id ?? "missing";
  await call("projects.getProjectEnv encrypted", "ok", () =>
    vercel.projects.getProjectEnv({ idOrName: project, id: oneId, teamId }),
  );
  await call("projects.getProjectEnv sensitive", "ok", () =>
    vercel.projects.getProjectEnv({ idOrName: project, id: secretId, teamId }),
  );
  await call("projects.editProjectEnv value", "ok", () =>
    vercel.projects.editProjectEnv({ idOrName: project, id: oneId, teamId, requestBody: { value: "1c" } }),
  );
  await call("projects.editProjectEnv sensitive value without key", "ok", () =>
    vercel.projects.editProjectEnv({
      idOrName: project,
      id: secretId,
      teamId,
      requestBody: { value: "s2", type: "sensitive", target: ["production", "preview"] },
    }),
  );
  await call("projects.editProjectEnv sensitive value with key (refused)", { status: 400, code: "bad_request" }, () =>
    vercel.projects.editProjectEnv({
      idOrName: project,
      id: secretId,
      teamId,
      requestBody: { key: "SECRET", value: "s3", type: "sensitive" },
    }),
  );
  await call("projects.removeProjectEnv", "ok", () =>
    vercel.projects.removeProjectEnv({ idOrName: project, id: oneId, teamId }),
  );
  const rest = envs.filter((e) => e.key !== "ONE").map((e) => e.id);
  await call(
    "projects.batchRemoveProjectEnv",
    "ok",
    () => vercel.projects.batchRemoveProjectEnv({ idOrName: project, teamId, requestBody: { ids: rest } }),
    (v) => (v.deleted === rest.length ? "" : `deleted ${v.deleted} of ${rest.length}`),
  );
  void many;

  // -- custom environments (per project, created through the control API)
  await control("POST", `/projects/${project}/custom-environments`, { slug: "staging", owner: "acme" });
  const customs = await call("environment.getProjectsByIdOrNameCustomEnvironments", "ok", () =>
    vercel.environment.getProjectsByIdOrNameCustomEnvironments({ idOrName: project, teamId }),
  );
  const staging = customs?.environments?.find((e) => e.slug === "staging");
  await call(
    "projects.createProjectEnv customEnvironmentIds",
    "ok",
    () =>
      vercel.projects.createProjectEnv({
        idOrName: project,
        teamId,
        requestBody: { key: "STAGE", value: "s", type: "encrypted", customEnvironmentIds: [staging?.id ?? "missing"] },
      }),
    (v) =>
      v.created && !Array.isArray(v.created) && v.created.customEnvironmentIds?.[0] === staging?.id
        ? ""
        : "the created var does not carry the custom environment",
  );
  await call(
    "projects.filterProjectEnvs customEnvironmentId",
    "ok",
    () => vercel.projects.filterProjectEnvs({ idOrName: project, teamId, customEnvironmentId: staging?.id }),
    (v) => ("envs" in v && v.envs.length === 1 ? "" : "expected exactly the custom-environment var"),
  );

  // -- configuration and team
  await call("integrations.getConfiguration", "ok", () =>
    vercel.integrations.getConfiguration({ id: acme.configurationId, teamId }),
  );
  await call("integrations.getConfigurations view=account", "ok", () =>
    vercel.integrations.getConfigurations({ view: "account", teamId }),
  );
  await call("integrations.getConfigurations view=project", "ok", () =>
    vercel.integrations.getConfigurations({ view: "project", teamId }),
  );
  await call("teams.getTeam", "ok", () => vercel.teams.getTeam({ teamId }));
  await control("PUT", "/teams/acme/members/outsider", { role: "VIEWER" });
  await call(
    "teams.getTeamMembers",
    "ok",
    () => vercel.teams.getTeamMembers({ teamId }),
    (v) => {
      const names = v.members.map((m) => `${m.username}:${m.role}`).sort().join(",");
      return names === "dev-user:OWNER,outsider:VIEWER" ? "" : `members ${names}`;
    },
  );
  await call(
    "teams.getTeamMembers limit 1",
    "ok",
    () => vercel.teams.getTeamMembers({ teamId, limit: 1 }),
    (v) => (v.members.length === 1 && v.pagination.hasNext ? "" : "expected one member and a next page"),
  );
  await control("PATCH", "/teams/acme", { sensitiveEnvironmentVariablePolicy: "on" });
  await call(
    "teams.getTeam policy on",
    "ok",
    () => vercel.teams.getTeam({ teamId }),
    (v) => (v.sensitiveEnvironmentVariablePolicy === "on" ? "" : `policy ${v.sensitiveEnvironmentVariablePolicy}`),
  );
  await call(
    "projects.createProjectEnv promoted to sensitive",
    "ok",
    () =>
      vercel.projects.createProjectEnv({
        idOrName: project,
        teamId,
        requestBody: { key: "PROMOTED", value: "v", type: "plain", target: ["production", "preview"] },
      }),
    (v) => (v.created && !Array.isArray(v.created) && v.created.type === "sensitive" ? "" : "not promoted"),
  );

  // -- error paths
  await call("projects.getProjects bad token", { status: 401 }, () =>
    sdk("not-a-token").projects.getProjects({ teamId }),
  );
  await control("PATCH", "/config", { invalid_token_status: 403 });
  await call("projects.getProjects bad token as 403 (variant)", { status: 403, code: "forbidden" }, () =>
    sdk("not-a-token").projects.getProjects({ teamId }),
  );
  await control("PATCH", "/config", { invalid_token_status: baseline.invalid_token_status });
  const personal = await install("dev-user");
  await call(
    "projects.getProjects personal account (no teamId)",
    "ok",
    () => sdk(personal.token).projects.getProjects({}),
    (v) => (v.projects?.length === 3 ? "" : `expected the 3 personal projects, got ${v.projects?.length}`),
  );
  await call("projects.getProjects team token without teamId (scope error)", { status: 403, code: "forbidden" }, () =>
    vercel.projects.getProjects({}),
  );
  await call("projects.getProject unknown", { status: 404, code: "not_found" }, () =>
    vercel.projects.getProject({ idOrName: "no-such-project", teamId }),
  );
  await control("POST", `/configurations/${acme.configurationId}/scopes/remove`, { scopes: ["read:team"] });
  await call("teams.getTeam without the team scope", { status: 403, code: "forbidden" }, () =>
    vercel.teams.getTeam({ teamId }),
  );
  await call("teams.getTeamMembers without the team scope", { status: 403, code: "forbidden" }, () =>
    vercel.teams.getTeamMembers({ teamId }),
  );
  await control("POST", `/configurations/${acme.configurationId}/scopes/remove`, {
    scopes: ["read-write:project-env-vars"],
  });
  await call(
    "projects.filterProjectEnvs missing permission",
    { status: 403, code: "forbidden" },
    () => vercel.projects.filterProjectEnvs({ idOrName: project, teamId }),
    (body) => (/scope/i.test(body.error.message) ? `message names a scope: ${body.error.message}` : ""),
  );
  await control("POST", `/configurations/${acme.configurationId}/scopes/confirm`, { scopes });
  await control("POST", `/configurations/${acme.configurationId}/disable`, {});
  await call(
    "projects.getProjects disabled configuration",
    { status: 403, code: "integration_configuration_disabled" },
    () => vercel.projects.getProjects({ teamId }),
  );
  await control("POST", `/configurations/${acme.configurationId}/enable`, {});
  await control("PUT", "/rate-limits", { rules: [{ route: "GET /v*/projects", capacity: 1, windowS: 60 }] });
  await call("projects.getProjects within the limit", "ok", () => vercel.projects.getProjects({ teamId }));
  await call(
    "projects.getProjects rate limited",
    { status: 429, code: "rate_limited" },
    () => vercel.projects.getProjects({ teamId }),
    (_body, error) => (/^\d+$/.test(error.headers.get("retry-after") ?? "") ? "" : "no Retry-After seconds"),
  );
  await control("DELETE", "/rate-limits");
  // Deleting needs write access to the configuration; the default grant is read (what
  // the product asks for), so the owner grants it first.
  await control("POST", `/configurations/${acme.configurationId}/scopes/confirm`, {
    scopes: ["read:project", "read-write:project-env-vars", "read-write:integration-configuration", "read:team"],
  });
  await call("integrations.deleteConfiguration", "ok", () =>
    vercel.integrations.deleteConfiguration({ id: acme.configurationId, teamId }),
  );
  await call("integrations.getConfiguration after delete (token revoked)", { status: 401 }, () =>
    vercel.integrations.getConfiguration({ id: acme.configurationId, teamId }),
  );
}

try {
  await main();
} catch (error) {
  emit({ fatal: String(error?.stack ?? error) });
}
const passed = results.filter((r) => r.ok).length;
emit({
  summary: {
    sdk: sdkVersion,
    calls: results.length,
    passed,
    failed: results.length - passed,
    controlErrors: controlErrors.length,
  },
});
