// The peer side of the benchmark: graphile-worker with the preset of its own
// perfTest/ (concurrency 24, a pool of 25, a local queue of 500 refetched
// after 10 ms, batched completion and failure), on the database named by
// the PG* variables. jobd-bench starts it and reads its output.
//
//   node bench/peer/graphile.js migrate    create graphile-worker's schema, exit
//   node bench/peer/graphile.js serve      run until SIGTERM; prints READY
//
// Tasks: `noop` does nothing (the drain); `lat` inserts its job id and
// clock_timestamp() into bench_latency, as jobd's latency handler does.
"use strict";

const { run, runMigrations } = require("graphile-worker");

const preset = {
  worker: {
    concurrentJobs: 24,
    maxPoolSize: 25,
    localQueue: { size: 500, refetchDelay: { durationMs: 10 } },
    completeJobBatchDelay: 0,
    failJobBatchDelay: 0,
    pollInterval: 1000,
  },
};

const taskList = {
  noop: async () => {},
  lat: async (_payload, helpers) => {
    await helpers.query("INSERT INTO bench_latency VALUES ($1, clock_timestamp())", [
      helpers.job.id,
    ]);
  },
};

async function main() {
  const mode = process.argv[2];
  const options = { preset, taskList };
  if (mode === "migrate") {
    await runMigrations(options);
    return;
  }
  if (mode !== "serve") {
    throw new Error("usage: graphile.js migrate|serve");
  }
  const runner = await run(options);
  process.on("SIGTERM", () => {
    runner.stop().then(() => process.exit(0));
  });
  console.log("READY");
  await runner.promise;
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
