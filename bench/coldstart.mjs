// Cold start, part 1: how long V8 takes to compile and instantiate each worker's wasm, the
// work an isolate does before it can answer its first request (workerd is V8 too; Node 22's
// V8 runs the same wasm). Each trial is a fresh Node process: V8 caches compiled modules by
// their bytes within a process, so a second compile in one process would measure the cache.
//
//   node bench/coldstart.mjs [--trials N] name=path.wasm ...
//
// Trials run round-robin over the workers so that a noisy moment is shared. Prints, per
// worker, the size and the median and p90 of compile, instantiate and their sum, then each
// worker's median as a ratio to the first one named (the baseline).
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";

const args = process.argv.slice(2);

if (args[0] === "--one") {
  // The measured part: one compile, one instantiate, in this fresh process.
  const bytes = readFileSync(args[1]);
  const t0 = process.hrtime.bigint();
  const module = await WebAssembly.compile(bytes);
  const t1 = process.hrtime.bigint();
  const imports = {};
  for (const imp of WebAssembly.Module.imports(module)) {
    imports[imp.module] ??= {};
    imports[imp.module][imp.name] =
      imp.kind === "function" ? () => {} :
      imp.kind === "memory" ? new WebAssembly.Memory({ initial: 1 }) :
      imp.kind === "table" ? new WebAssembly.Table({ initial: 1, element: "anyfunc" }) :
      // wasm-bindgen imports the JS exception tag (exception handling is enabled).
      imp.kind === "tag" ? new WebAssembly.Tag({ parameters: ["externref"] }) :
      new WebAssembly.Global({ value: "i32", mutable: true }, 0);
  }
  await WebAssembly.instantiate(module, imports);
  const t2 = process.hrtime.bigint();
  console.log(JSON.stringify({ compile: Number(t1 - t0) / 1e6, instantiate: Number(t2 - t1) / 1e6 }));
  process.exit(0);
}

let trials = 15;
const workers = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--trials") trials = Number(args[++i]);
  else {
    const [name, path] = args[i].split("=");
    workers.push({ name, path, runs: [] });
  }
}
if (workers.length === 0 || !(trials > 0)) {
  console.error("usage: node bench/coldstart.mjs [--trials N] name=path.wasm ...");
  process.exit(2);
}

const flags = (process.env.COLDSTART_NODE_FLAGS || "").split(" ").filter(Boolean);
for (let t = 0; t < trials; t++) {
  for (const w of workers) {
    const r = spawnSync(process.execPath, [...flags, process.argv[1], "--one", w.path], { encoding: "utf8" });
    if (r.status !== 0) {
      console.error(`${w.name}: ${r.stderr}`);
      process.exit(1);
    }
    w.runs.push(JSON.parse(r.stdout));
  }
}

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const fmt = (x) => x.toFixed(2).padStart(8);
console.log(`V8 ${process.versions.v8} (Node ${process.version})${flags.length ? " " + flags.join(" ") : ""}, ${trials} fresh processes per worker`);
console.log(`${"worker".padEnd(8)} ${"gzip B".padStart(9)} | compile ms p50   p90 | instantiate p50   p90 | total p50   p90 | ratio`);
const base = workers[0];
const median = (w) => pct(w.runs.map((r) => r.compile + r.instantiate), 50);
for (const w of workers) {
  const bytes = readFileSync(w.path);
  const c = w.runs.map((r) => r.compile);
  const i = w.runs.map((r) => r.instantiate);
  const tot = w.runs.map((r) => r.compile + r.instantiate);
  console.log(
    `${w.name.padEnd(8)} ${String(gzipSync(bytes, { level: 9 }).length).padStart(9)} |` +
    `${fmt(pct(c, 50))}${fmt(pct(c, 90))} |    ${fmt(pct(i, 50))}${fmt(pct(i, 90))} |${fmt(pct(tot, 50))}${fmt(pct(tot, 90))} | ${(median(w) / median(base)).toFixed(2)}x ${base.name}`,
  );
}
