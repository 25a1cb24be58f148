#!/usr/bin/env python3
"""Turns a jobd-bench JSON result into the markdown table of BENCHMARKS.md."""
import json
import sys

r = json.load(open(sys.argv[1]))
print(f"Profile `{r['profile']}`; PostgreSQL {r['postgresql']}, fsync={r['fsync']}, "
      f"synchronous_commit={r['synchronous_commit']}.\n")
print("| scenario | jobs | seconds | jobs/s | peak RSS |")
print("|---|---|---|---|---|")
for d in r["drain"]:
    print(f"| drain, 1 daemon, workers {d['workers']} | {d['jobs']} | {d['seconds']:.2f} | "
          f"{d['jobs_per_s']:.0f} | {d['peak_rss_kib'] / 1024:.1f} MiB |")
for d in r.get("drain_daemons", []):
    print(f"| drain, {d['daemons']} daemons, workers {d['workers']} each | {d['jobs']} | "
          f"{d['seconds']:.2f} | {d['jobs_per_s']:.0f} | {d['peak_rss_kib'] / 1024:.1f} MiB (first) |")
lat = r["latency"]
print(f"\nLatency, commit acknowledged to handler entered, {lat['rate']} jobs/s for "
      f"{lat['seconds']} s ({lat['jobs']} jobs): p50 {lat['p50_ms']:.2f} ms, "
      f"p90 {lat['p90_ms']:.2f} ms, p99 {lat['p99_ms']:.2f} ms, max {lat['max_ms']:.2f} ms; "
      f"idle RSS {lat['idle_rss_kib'] / 1024:.1f} MiB.")
e = r["enqueue"]
print(f"\nEnqueue: {e['single_per_s']:.0f} single-job transactions/s through jobd.enqueue; "
      f"a bulk INSERT of {e['bulk_jobs']} jobs at {e['bulk_per_s']:.0f} jobs/s.")
