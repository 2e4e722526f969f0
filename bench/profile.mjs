// Samples a running worker with V8's CPU profiler, through workerd's inspector:
//
//   wrangler dev --inspector-port 9229 ...          (APP_WASM_NAMES=1 for readable wasm frames)
//   node bench/profile.mjs 9229 10 /tmp/run.cpuprofile [--interval-us 200]
//
// Writes the profile (Chrome DevTools opens it) and prints the functions with the most samples
// of their own and, among the worker's wasm (app_provider / app_domain), the most samples
// including what they call. The isolate also runs the worker's Durable Objects.
//
//   node bench/profile.mjs 9229 4 /tmp/chunks --roll
//
// profiles in consecutive chunks of 4 s (`/tmp/chunks/chunk-000.cpuprofile`, ...) until the
// worker goes away: for one phase of a load benchmark whose worker stops right after it (find
// the phase's chunks by the functions in them).
//
// Uses the `ws` package (in node_modules through wrangler): Node's built-in WebSocket loses
// the inspector session within a second ("client closed connection"), `ws` keeps it.
import { mkdirSync, writeFileSync } from "node:fs";
import WebSocket from "ws";

const [port, seconds, out, ...rest] = process.argv.slice(2);
if (!port || !seconds || !out) {
  console.error("usage: node bench/profile.mjs <inspector-port> <seconds> <out.cpuprofile | out-dir --roll> [--interval-us N]");
  process.exit(2);
}
const flag = (name) => rest.indexOf(name);
const interval = flag("--interval-us") >= 0 ? Number(rest[flag("--interval-us") + 1]) : 200;
const roll = flag("--roll") >= 0;

const targets = await (await fetch(`http://127.0.0.1:${port}/json`)).json();
if (!targets.length) throw new Error(`no inspector target on port ${port}`);
const ws = new WebSocket(targets[0].webSocketDebuggerUrl.replace("localhost", "127.0.0.1"), {
  perMessageDeflate: false,
});
let id = 0;
const pending = new Map();
ws.on("message", (m) => {
  const d = JSON.parse(String(m));
  if (d.id && pending.has(d.id)) {
    pending.get(d.id)(d);
    pending.delete(d.id);
  }
});
const send = (method, params = {}) =>
  new Promise((resolve) => {
    pending.set(++id, resolve);
    ws.send(JSON.stringify({ id, method, params }));
  });
await new Promise((resolve, reject) => {
  ws.on("open", resolve);
  ws.on("error", reject);
});
let closed = false;
ws.on("close", () => {
  closed = true;
});
await send("Profiler.enable");
await send("Profiler.setSamplingInterval", { interval });
if (roll) {
  mkdirSync(out, { recursive: true });
  for (let n = 0; !closed; n++) {
    await send("Profiler.start");
    await new Promise((r) => setTimeout(r, Number(seconds) * 1000));
    // A worker that stopped meanwhile never answers.
    const stopped = await Promise.race([send("Profiler.stop"), new Promise((r) => setTimeout(r, 5000))]);
    if (!stopped?.result) break;
    const file = `${out}/chunk-${String(n).padStart(3, "0")}.cpuprofile`;
    writeFileSync(file, JSON.stringify(stopped.result.profile));
    console.log(`${file}: ${stopped.result.profile.samples.length} samples`);
  }
  process.exit(0);
}
await send("Profiler.start");
await new Promise((r) => setTimeout(r, Number(seconds) * 1000));
const { result } = await send("Profiler.stop");
ws.close();
const profile = result.profile;
writeFileSync(out, JSON.stringify(profile));

// Self and inclusive sample counts by function name (wasm names lose their `::h<hash>`).
const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const name = (n) => (n.callFrame.functionName || "(anonymous)").replace(/::h[0-9a-f]{16}$/, "");
const own = new Map();
const inclusive = new Map();
const bump = (m, k) => m.set(k, (m.get(k) ?? 0) + 1);
for (const sample of profile.samples) {
  bump(own, name(nodes.get(sample)));
  const seen = new Set();
  for (let n = sample; n !== undefined; n = parent.get(n)) {
    const k = name(nodes.get(n));
    if (!seen.has(k)) {
      seen.add(k);
      bump(inclusive, k);
    }
  }
}
const total = profile.samples.length;
const top = (m, filter, count) =>
  [...m]
    .filter(([k]) => filter(k))
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(([k, v]) => `${((100 * v) / total).toFixed(1).padStart(5)}%  ${k.slice(0, 140)}`)
    .join("\n");
console.log(`${total} samples over ${seconds} s, written to ${out}\n\nown samples:`);
console.log(top(own, () => true, 25));
console.log("\nthe worker's wasm, including what it calls:");
console.log(top(inclusive, (k) => /app_provider|app_domain/.test(k), 25));
