#!/usr/bin/env python3
"""Turns a jobd-bench JSON result into the markdown tables of BENCHMARKS.md:
every scenario, jobd beside the database's limit and graphile-worker, and
the issue's targets with the ratios measured in this one run."""
import json
import sys

r = json.load(open(sys.argv[1]))


def mib(kib):
    return f"{kib / 1024:.1f} MiB"


def lat_line(lat):
    line = (f"p50 {lat['p50_ms']:.2f} ms, p90 {lat['p90_ms']:.2f} ms, "
            f"p99 {lat['p99_ms']:.2f} ms, max {lat['max_ms']:.2f} ms ({lat['jobs']} jobs)")
    if "warmup" in lat:
        w = lat["warmup"]
        line += (f"; the warm-up second before: p50 {w['p50_ms']:.2f} ms, "
                 f"max {w['max_ms']:.2f} ms ({w['jobs']} jobs)")
    return line


print(f"Profile `{r['profile']}`; PostgreSQL {r['postgresql']}, fsync={r['fsync']}, "
      f"synchronous_commit={r['synchronous_commit']}.\n")

drains = r.get("drain", [])
best = max(drains, key=lambda d: d["jobs_per_s"]) if drains else None
limit = max(r.get("limit", []), key=lambda d: d["jobs_per_s"], default=None)
limit_ahead = max(r.get("limit_ahead", []), key=lambda d: d["jobs_per_s"], default=None)
peer = r.get("peer", {})

print("### Drain: pre-enqueued no-op jobs, first claim to last completion\n")
print("| system | configuration | jobs | seconds | jobs/s | peak RSS |")
print("|---|---|---|---|---|---|")
for d in drains:
    print(f"| jobd | 1 daemon, workers {d['workers']} | {d['jobs']} | {d['seconds']:.2f} | "
          f"{d['jobs_per_s']:.0f} | {mib(d['peak_rss_kib'])} |")
for d in r.get("drain_ahead", []):
    print(f"| jobd | 1 daemon, workers {d['workers']}, claim_ahead {d['claim_ahead']} | "
          f"{d['jobs']} | {d['seconds']:.2f} | {d['jobs_per_s']:.0f} | "
          f"{mib(d['peak_rss_kib'])} |")
for d in r.get("drain_daemons", []):
    print(f"| jobd | {d['daemons']} daemons, workers {d['workers']} each | {d['jobs']} | "
          f"{d['seconds']:.2f} | {d['jobs_per_s']:.0f} | {mib(d['peak_rss_kib'])} (first) |")
if "growth" in r:
    g = r["growth"]
    print(f"| jobd | 1 daemon, workers {g['workers']}, with {g['extra_finished']:,} finished and "
          f"{g['extra_far_future']:,} far-future jobs | {g['jobs']} | {g['seconds']:.2f} | "
          f"{g['jobs_per_s']:.0f} | {mib(g['peak_rss_kib'])} |")
for d in r.get("limit", []) + r.get("limit_ahead", []):
    print(f"| pgbench, jobd's claim + `jobd.complete_jobs` | batch {d['batch']}, "
          f"{d['clients']} clients | {d['jobs']} | {d['seconds']:.2f} | {d['jobs_per_s']:.0f} | — |")
if "python" in r:
    p = r["python"]
    d = p["runner"]
    print(f"| jobd, Python no-op job class | `runner = python`, 8 workers | {d['jobs']} | "
          f"{d['seconds']:.2f} | {d['jobs_per_s']:.0f} | {mib(d['peak_rss_kib'])} (daemon) |")
    if "runner_ahead" in p:
        d = p["runner_ahead"]
        print(f"| jobd, Python no-op job class | `runner = python`, 8 workers, claim_ahead 500 | "
              f"{d['jobs']} | {d['seconds']:.2f} | {d['jobs_per_s']:.0f} | "
              f"{mib(d['peak_rss_kib'])} (daemon) |")
    d = p["exec"]
    print(f"| jobd, the same class through `exec` | an interpreter per job, 8 workers | "
          f"{d['jobs']} | {d['seconds']:.2f} | {d['jobs_per_s']:.0f} | "
          f"{mib(d['peak_rss_kib'])} (daemon) |")
if "drain" in peer:
    d = peer["drain"]
    print(f"| graphile-worker 0.18.0 | concurrency 24, local queue 500, batched completion | "
          f"{d['jobs']} | {d['seconds']:.2f} | {d['jobs_per_s']:.0f} | {mib(d['peak_rss_kib'])} |")

print("\n### Latency: one job per transaction at a fixed rate, idle consumer\n")
warmed = "warmup" in r.get("latency", {})
print("Commit acknowledged (the client's clock) to handler entered (the handler's "
      "`clock_timestamp()`); one machine, one clock." +
      (" Measured after a warm-up second at the same rate (a fresh jobd's workers each open "
       "a job connection at their first job), which is shown apart." if warmed else "") + "\n")
print("| system | rate | latency | idle RSS |")
print("|---|---|---|---|")
if "latency" in r:
    lat = r["latency"]
    print(f"| jobd | {lat['rate']}/s for {lat['seconds']} s | {lat_line(lat)} | "
          f"{mib(lat['idle_rss_kib'])} |")
if "latency" in peer:
    lat = peer["latency"]
    print(f"| graphile-worker | {lat['rate']}/s for {lat['seconds']} s | {lat_line(lat)} | "
          f"{mib(lat['idle_rss_kib'])} |")

if r.get("sustained"):
    print("\n### Sustained load: arrivals in a batch every 10 ms\n")
    print("Latency here is the claim's time minus the enqueue transaction's "
          "(`date_started - date_created`, the database's clock).\n")
    print("| share of best drain | arrivals/s | workers | latency |")
    print("|---|---|---|---|")
    for s in r["sustained"]:
        print(f"| {s['share'] * 100:.0f}% | {s['rate']:.0f} | {s['workers']} | {lat_line(s)} |")

if "enqueue" in r:
    e = r["enqueue"]
    print(f"\nEnqueue: {e['single_per_s']:.0f} single-job transactions/s through `jobd.enqueue` "
          f"(each a durable commit); a bulk INSERT of {e['bulk_jobs']:,} jobs at "
          f"{e['bulk_per_s']:.0f} jobs/s.")

if "web_enqueue" in r:
    w = r["web_enqueue"]
    print(f"\nWeb-scale enqueue: {w['clients']} pgbench clients, each transaction a write of its "
          f"own plus one `jobd.enqueue`, durable commits, best of {w['rounds']} runs of "
          f"{w['seconds']} s each, a daemon listening: "
          f"{w['commits_per_s_with_trigger']:.0f} commits/s with the NOTIFY trigger, "
          f"{w['commits_per_s_without_trigger']:.0f} without it "
          f"({w['ratio'] * 100:.0f}%).")

print("\n### Against the targets, ratios from this run\n")
print("| target | measured | |")
print("|---|---|---|")


def row(target, measured, ok):
    print(f"| {target} | {measured} | {'met' if ok else 'missed'} |")


def ratio_row(target, num, den, goal, percent=False):
    ratio = num / den
    shown = f"{ratio * 100:.0f}%" if percent else f"{ratio:.2f}×"
    row(target, f"{num:.0f} / {den:.0f} = {shown}", ratio >= goal)


aheads = r.get("drain_ahead", [])
best_ahead = max(aheads, key=lambda d: d["jobs_per_s"]) if aheads else None
peer_rate = peer["drain"]["jobs_per_s"] if "drain" in peer else None
if best and peer_rate:
    ratio_row("drain ≥ 1.5 × graphile-worker (jobd claiming only for free slots)",
              best["jobs_per_s"], peer_rate, 1.5)
if best_ahead and peer_rate:
    ratio_row(f"drain ≥ 1.5 × graphile-worker (claim_ahead {best_ahead['claim_ahead']}, "
              "like its local queue)", best_ahead["jobs_per_s"], peer_rate, 1.5)
for d in aheads:
    if peer_rate and d["workers"] >= 32:
        ratio_row(f"drain ahead of graphile-worker at {d['workers']} workers (claim_ahead)",
                  d["jobs_per_s"], peer_rate, 1.0)
if best and limit:
    ratio_row("drain ≥ 85% of the pgbench limit", best["jobs_per_s"], limit["jobs_per_s"], 0.85,
              percent=True)
if limit and peer_rate:
    ratio_row("the pgbench limit ≥ 1.5 × graphile-worker", limit["jobs_per_s"], peer_rate, 1.5)
eight = next((d for d in drains if d["workers"] == 8), None)
if eight:
    row("drain at 8 workers ≥ 3 × 4,855 jobs/s (issue 17's baseline)",
        f"{eight['jobs_per_s']:.0f} = {eight['jobs_per_s'] / 4855:.2f}×",
        eight["jobs_per_s"] >= 3 * 4855)
eight = next((d for d in aheads if d["workers"] == 8), None)
if eight:
    row("the same with claim_ahead",
        f"{eight['jobs_per_s']:.0f} = {eight['jobs_per_s'] / 4855:.2f}×",
        eight["jobs_per_s"] >= 3 * 4855)
if best_ahead and limit_ahead:
    ratio_row(f"drain with claim_ahead ≥ 85% of the pgbench limit in claims of "
              f"{limit_ahead['batch']}", best_ahead["jobs_per_s"], limit_ahead["jobs_per_s"],
              0.85, percent=True)
if limit_ahead and peer_rate:
    ratio_row(f"the pgbench limit in claims of {limit_ahead['batch']} ≥ 1.5 × graphile-worker "
              "(its local queue fetches as many)", limit_ahead["jobs_per_s"], peer_rate, 1.5)
if "latency" in r:
    lat = r["latency"]
    row("latency p50 ≤ 0.5 ms", f"{lat['p50_ms']:.2f} ms", lat["p50_ms"] <= 0.5)
    row("latency p99 ≤ 2 ms", f"{lat['p99_ms']:.2f} ms", lat["p99_ms"] <= 2.0)
ninety = next((x for x in r.get("sustained", []) if abs(x["share"] - 0.9) < 0.01), None)
if ninety:
    row("sustained 90% of the best drain: p99 ≤ 50 ms", f"{ninety['p99_ms']:.2f} ms",
        ninety["p99_ms"] <= 50)
if "web_enqueue" in r:
    w = r["web_enqueue"]
    row("web-scale enqueue: commits/s with the trigger ≥ 90% of without",
        f"{w['ratio'] * 100:.0f}%", w["ratio"] >= 0.9)
if "latency" in r and "latency" in peer:
    lat, p = r["latency"], peer["latency"]
    row("latency below graphile-worker's", f"p50 {lat['p50_ms']:.2f} vs {p['p50_ms']:.2f} ms, "
        f"p99 {lat['p99_ms']:.2f} vs {p['p99_ms']:.2f} ms",
        lat["p50_ms"] < p["p50_ms"] and lat["p99_ms"] < p["p99_ms"])
if "growth" in r and drains:
    g = r["growth"]
    clean = next((d for d in drains if d["workers"] == g["workers"]), None)
    if clean:
        ratio = g["jobs_per_s"] / clean["jobs_per_s"]
        row("growth ≥ 90% of the clean drain", f"{g['jobs_per_s']:.0f} / "
            f"{clean['jobs_per_s']:.0f} = {ratio * 100:.0f}%", ratio >= 0.9)
two = next((d for d in r.get("drain_daemons", []) if d["daemons"] == 2), None)
one = next((d for d in drains if two and d["workers"] == two["workers"]), None)
if two and one:
    row("two daemons at least as fast as one", f"{two['jobs_per_s']:.0f} vs "
        f"{one['jobs_per_s']:.0f} jobs/s (workers {one['workers']} each)",
        two["jobs_per_s"] >= one["jobs_per_s"])
if "latency" in r:
    idle = r["latency"]["idle_rss_kib"] / 1024
    row("RSS ≤ 25 MB idle", f"{idle:.1f} MiB", idle * 1.048576 <= 25)
if drains:
    peak = max(d["peak_rss_kib"] for d in drains + r.get("drain_ahead", [])) / 1024
    row("RSS ≤ 80 MB at full drain", f"{peak:.1f} MiB", peak * 1.048576 <= 80)
if "python" in r:
    p = r["python"]
    rate = p["runner"]["jobs_per_s"]
    row("Python no-op jobs, runner = python on 8 workers ≥ 5,000 jobs/s",
        f"{rate:,.0f} jobs/s, {p['runner_over_exec']:.0f}× exec's"
        + (f", {p['overhead_us']:.0f} µs a job over a C++ noop" if "overhead_us" in p else ""),
        rate >= 5000)
    if "runner_ahead" in p:
        rate = p["runner_ahead"]["jobs_per_s"]
        row("the same with claim_ahead 500", f"{rate:,.0f} jobs/s", rate >= 5000)
if "enqueue" in r:
    bulk = r["enqueue"]["bulk_per_s"]
    row("bulk enqueue ≥ 100,000 jobs/s", f"{bulk:,.0f} jobs/s", bulk >= 100000)
