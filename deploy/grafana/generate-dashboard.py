#!/usr/bin/env python3
"""Writes deploy/grafana/dashboards/mitra.json, the mitra Grafana dashboard.

The JSON is committed; this script is its source. Change the panels here and
run `python3 deploy/grafana/generate-dashboard.py` (no dependencies beyond the
standard library). .ci/check-deploy fails when the committed JSON differs from
what this script writes.

Panels read the recording rules of deploy/prometheus/rules/recording.yml
wherever one exists, so the dashboard stays cheap to render over long ranges.
Money is in minor units (cents) of the `currency` label: amounts in different
currencies are never summed together.
"""

import json
import os
import sys

DS = {"type": "prometheus", "uid": "${datasource}"}
PROGRAM = 'program=~"$program"'
JOBS = 'job=~"mitra-api|mitra-worker"'

# Dashboard grid: 24 columns wide.
_panels = []
_next_id = [1]
_cursor = {"x": 0, "y": 0, "row_h": 0}


def _new_id():
    i = _next_id[0]
    _next_id[0] += 1
    return i


def row(title):
    """Starts a new row at the left edge below everything placed so far."""
    c = _cursor
    c["y"] += c["row_h"]
    c["x"], c["row_h"] = 0, 0
    _panels.append(
        {
            "id": _new_id(),
            "type": "row",
            "title": title,
            "collapsed": False,
            "gridPos": {"h": 1, "w": 24, "x": 0, "y": c["y"]},
            "panels": [],
        }
    )
    c["y"] += 1


def _place(w, h):
    c = _cursor
    if c["x"] + w > 24:
        c["y"] += c["row_h"]
        c["x"], c["row_h"] = 0, 0
    pos = {"h": h, "w": w, "x": c["x"], "y": c["y"]}
    c["x"] += w
    c["row_h"] = max(c["row_h"], h)
    return pos


def target(expr, legend="", ref="A", instant=False, fmt="time_series"):
    t = {
        "datasource": DS,
        "refId": ref,
        "expr": expr,
        "legendFormat": legend or "__auto",
        "range": not instant,
        "instant": instant,
        "format": fmt,
    }
    return t


def timeseries(title, targets, unit="short", w=8, h=8, description="", stack=False,
               min_zero=True, thresholds=None):
    defaults = {
        "unit": unit,
        "custom": {
            "drawStyle": "line",
            "lineWidth": 1,
            "fillOpacity": 10,
            "showPoints": "never",
            "spanNulls": False,
            "stacking": {"mode": "normal" if stack else "none", "group": "A"},
        },
    }
    if min_zero:
        defaults["min"] = 0
    if thresholds:
        defaults["thresholds"] = {"mode": "absolute", "steps": thresholds}
        defaults["custom"]["thresholdsStyle"] = {"mode": "line"}
    _panels.append(
        {
            "id": _new_id(),
            "type": "timeseries",
            "title": title,
            "description": description,
            "datasource": DS,
            "gridPos": _place(w, h),
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": {
                "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                "tooltip": {"mode": "multi", "sort": "desc"},
            },
            "targets": _with_refs(targets),
        }
    )


def stat(title, targets, unit="short", w=4, h=4, description="", mappings=None,
         thresholds=None, decimals=None):
    defaults = {
        "unit": unit,
        "mappings": mappings or [],
        "thresholds": {
            "mode": "absolute",
            "steps": thresholds or [{"color": "green", "value": None}],
        },
    }
    if decimals is not None:
        defaults["decimals"] = decimals
    _panels.append(
        {
            "id": _new_id(),
            "type": "stat",
            "title": title,
            "description": description,
            "datasource": DS,
            "gridPos": _place(w, h),
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": {
                "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                "colorMode": "background" if mappings else "value",
                "graphMode": "none",
                "textMode": "value_and_name",
                "justifyMode": "auto",
                "orientation": "auto",
            },
            "targets": _with_refs(targets),
        }
    )


def table(title, targets, w=12, h=6, description=""):
    _panels.append(
        {
            "id": _new_id(),
            "type": "table",
            "title": title,
            "description": description,
            "datasource": DS,
            "gridPos": _place(w, h),
            "fieldConfig": {"defaults": {}, "overrides": []},
            "options": {"showHeader": True},
            "transformations": [
                {"id": "organize", "options": {"excludeByName": {"Time": True, "Value": True,
                                                                 "__name__": True}}}
            ],
            "targets": _with_refs(targets),
        }
    )


def _with_refs(targets):
    out = []
    for i, t in enumerate(targets):
        t = dict(t)
        t["refId"] = chr(ord("A") + i)
        out.append(t)
    return out


UP_DOWN = [
    {"type": "value", "options": {"0": {"text": "DOWN", "color": "red", "index": 0},
                                   "1": {"text": "UP", "color": "green", "index": 1}}}
]
RED_BELOW_1 = [{"color": "red", "value": None}, {"color": "green", "value": 1}]


def build():
    # ---------------------------------------------------------------- ops
    row("Operations")
    stat("Instances up", [target(f"sum by (job) (up{{{JOBS}}})", "{{job}}", instant=True)],
         w=6, description="Scrape targets answering /metrics, per job.",
         thresholds=RED_BELOW_1)
    stat("Backend up", [target("min by (backend) (mitra_backend_up)", "{{backend}}",
                               instant=True)],
         w=6, mappings=UP_DOWN, thresholds=[{"color": "red", "value": None},
                                            {"color": "green", "value": 1}],
         description="mitra_backend_up: DOWN when any mitra process cannot reach the "
                     "backend (its /readyz then answers 503).")
    stat("Version", [target("count by (version) (mitra_build_info)", "{{version}}",
                            instant=True)],
         w=6, description="Processes running each mitra version.")
    stat("Webhook 5xx (5m)", [target(":mitra_webhook_5xx:ratio_rate5m", "webhook 5xx",
                                     instant=True)],
         unit="percentunit", w=6, decimals=2,
         thresholds=[{"color": "green", "value": None}, {"color": "orange", "value": 0.001},
                     {"color": "red", "value": 0.01}],
         description="Share of conversion webhooks answered 5xx: those were not stored. "
                     "Alert MitraWebhookErrors fires above 1%.")

    timeseries("Request rate by route",
               [target("sum by (route) (job_route_status:mitra_http_requests:rate5m)",
                       "{{route}}")],
               unit="reqps", stack=True,
               description="HTTP requests per second, by actix route pattern.")
    timeseries("Responses by status",
               [target("sum by (status) (job_route_status:mitra_http_requests:rate5m)",
                       "{{status}}")],
               unit="reqps", stack=True)
    timeseries("5xx ratio",
               [target("job:mitra_http_requests_5xx:ratio_rate5m", "{{job}} all routes"),
                target(":mitra_webhook_5xx:ratio_rate5m", "conversion webhook")],
               unit="percentunit",
               thresholds=[{"color": "green", "value": None}, {"color": "red", "value": 0.01}])

    timeseries("Redirect latency (GET /l/{code})",
               [target(":mitra_redirect_duration_seconds:p50_rate5m", "p50"),
                target(":mitra_redirect_duration_seconds:p90_rate5m", "p90"),
                target(":mitra_redirect_duration_seconds:p99_rate5m", "p99")],
               unit="s",
               thresholds=[{"color": "green", "value": None}, {"color": "red", "value": 0.05}],
               description="MitraRedirectSlow fires when p99 stays above 50 ms for 10 min.")
    timeseries("Webhook latency (POST conversions)",
               [target(":mitra_webhook_duration_seconds:p50_rate5m", "p50"),
                target(":mitra_webhook_duration_seconds:p99_rate5m", "p99")],
               unit="s", description="Includes the Postgres commit of the conversion.")
    timeseries("p99 latency by route",
               [target("route:mitra_http_request_duration_seconds:p99_rate5m", "{{route}}")],
               unit="s")

    timeseries("Queue depth",
               [target("queue:mitra_queue_depth:max", "{{queue}}")],
               description="clicks: Redis stream entries not yet processed; attribution: "
                           "conversions received but not yet attributed.")
    timeseries("Queue oldest item age",
               [target("queue:mitra_queue_oldest_age_seconds:max", "{{queue}}")],
               unit="s",
               thresholds=[{"color": "green", "value": None}, {"color": "orange", "value": 300},
                           {"color": "red", "value": 1800}],
               description="Worker lag. Alerts MitraClickQueueLag and "
                           "MitraAttributionQueueLag warn at 5 min and page at 30 min.")
    timeseries("Worker steps",
               [target("worker_outcome:mitra_worker_steps:rate5m", "{{worker}} {{outcome}}")],
               unit="ops", description="Steps per second of each background worker: "
                                       "busy, idle or failed.")

    timeseries("Backend errors",
               [target("backend:mitra_backend_errors:rate5m", "{{backend}}")],
               unit="ops", description="Failed calls to Postgres and Redis per second.")
    timeseries("Resident memory",
               [target(f"process_resident_memory_bytes{{{JOBS}}}", "{{job}} {{instance}}")],
               unit="bytes")
    timeseries("CPU",
               [target(f"rate(process_cpu_seconds_total{{{JOBS}}}[$__rate_interval])",
                       "{{job}} {{instance}}")],
               unit="percentunit", description="CPU seconds per second (1 = one core).")

    table("Firing alerts",
          [target('ALERTS{alertname=~"Mitra.*", alertstate="firing"}', instant=True,
                  fmt="table")],
          w=24, h=5,
          description="Runbooks: deploy/README.md, section 'Alerts and runbooks'.")

    # ------------------------------------------------------------ business
    row("Business")
    stat("Human clicks (range)",
         [target(f'sum(increase(mitra_clicks_total{{outcome="logged", {PROGRAM}}}[$__range]))',
                 "clicks", instant=True)],
         w=6, decimals=0)
    stat("Attributed conversions (range)",
         [target('sum by (event) (increase(mitra_conversions_total'
                 f'{{outcome="attributed", {PROGRAM}}}[$__range]))', "{{event}}",
                 instant=True)],
         w=6, decimals=0)
    stat("Commission booked (range, minor units)",
         [target('sum by (currency) (increase(mitra_commission_minor_total'
                 f'{{status="pending", {PROGRAM}}}[$__range]))', "{{currency}}",
                 instant=True)],
         w=6, decimals=0, description="Minor units (cents) of each currency.")
    stat("Revenue (range, minor units)",
         [target('sum by (currency) (increase(mitra_revenue_minor_total'
                 f'{{{PROGRAM}}}[$__range]))', "{{currency}}", instant=True)],
         w=6, decimals=0, description="Attributed sales, minor units of each currency.")

    timeseries("Clicks by outcome",
               [target(f"sum by (outcome) (program_outcome:mitra_clicks:rate5m{{{PROGRAM}}})",
                       "{{outcome}}")],
               unit="reqps", stack=True,
               description="logged: human clicks; bot: logged but flagged; the rest were "
                           "refused (404) or, for log_failed, redirected without a log entry.")
    timeseries("Unique and bot clicks (rolled up)",
               [target(f"sum by (kind) (program_kind:mitra_click_rollup:rate5m{{{PROGRAM}}})",
                       "{{kind}}")],
               unit="reqps",
               description="Clicks counted into the Postgres daily roll-ups by the click "
                           "worker: all clicks, unique clicks, bot clicks.")
    timeseries("Conversions by outcome",
               [target("sum by (event, outcome) "
                       f"(program_event_outcome:mitra_conversions:rate5m{{{PROGRAM}}}) * 60",
                       "{{event}} {{outcome}}")],
               unit="short", description="Per minute. received/duplicate come from the "
                                         "webhook; the rest from attribution.")

    timeseries("Commission by currency and status (per hour)",
               [target("sum by (currency, status) "
                       f"(program_currency_status:mitra_commission_minor:rate1h{{{PROGRAM}}})"
                       " * 3600", "{{currency}} {{status}}")],
               unit="short", description="Minor units per hour moved into each status "
                                         "(pending = booked).")
    timeseries("Revenue by currency (per hour)",
               [target("sum by (currency) "
                       f"(program_currency:mitra_revenue_minor:rate1h{{{PROGRAM}}}) * 3600",
                       "{{currency}}")],
               unit="short", description="Attributed sales, minor units per hour.")
    timeseries("Payouts by currency (per hour)",
               [target("sum by (currency) "
                       f"(program_currency:mitra_payout_minor:rate1h{{{PROGRAM}}}) * 3600",
                       "{{currency}}")],
               unit="short", description="Minor units paid out per hour.")

    timeseries("EPC per program",
               [target(f"program_currency:mitra_epc_minor:ratio_rate1h{{{PROGRAM}}}",
                       "{{program}} {{currency}} 1h"),
                target(f"program_currency:mitra_epc_minor:ratio_rate1d{{{PROGRAM}}}",
                       "{{program}} {{currency}} 1d")],
               unit="short",
               description="Earnings per click: commission booked per human click, in minor "
                           "units of the program's currency.")
    timeseries("Conversion rate per program",
               [target(f"program:mitra_conversion_rate:ratio_rate1h{{{PROGRAM}}}",
                       "{{program}} 1h"),
                target(f"program:mitra_conversion_rate:ratio_rate1d{{{PROGRAM}}}",
                       "{{program}} 1d")],
               unit="percentunit",
               description="Attributed sales and leads per human click.")
    timeseries("Bot share of clicks",
               [target(f"program:mitra_bot_clicks:ratio_rate1h{{{PROGRAM}}}", "{{program}}")],
               unit="percentunit")

    timeseries("Approval rate (7d)",
               [target(f"program:mitra_commission_approval:ratio_rate7d{{{PROGRAM}}}",
                       "{{program}}")],
               unit="percentunit", w=12,
               description="Of the commissions decided over 7 days, the share approved "
                           "rather than reversed or rejected.")
    timeseries("Reversal rate (7d)",
               [target(f"program:mitra_commission_reversal:ratio_rate7d{{{PROGRAM}}}",
                       "{{program}} by count"),
                target("program_currency:mitra_commission_minor_reversal:ratio_rate7d"
                       f"{{{PROGRAM}}}", "{{program}} {{currency}} by amount")],
               unit="percentunit", w=12,
               description="Commissions reversed (refunds) per commission booked over 7 days.")


def dashboard():
    build()
    return {
        "uid": "mitra-overview",
        "title": "mitra",
        "description": "mitra affiliate tracking: operations and business KPIs",
        "tags": ["mitra"],
        "timezone": "utc",
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "links": [],
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {"selected": False, "text": "Prometheus",
                                "value": "mitra-prometheus"},
                    "hide": 0,
                    "refresh": 1,
                    "regex": "",
                    "options": [],
                },
                {
                    "name": "program",
                    "label": "Program",
                    "type": "query",
                    "datasource": DS,
                    "definition": "label_values(mitra_clicks_total, program)",
                    "query": {
                        "query": "label_values(mitra_clicks_total, program)",
                        "refId": "PrometheusVariableQueryEditor-VariableQuery",
                    },
                    "refresh": 2,
                    "multi": True,
                    "includeAll": True,
                    "allValue": ".*",
                    "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
                    "sort": 1,
                    "hide": 0,
                    "regex": "",
                    "options": [],
                },
            ]
        },
        "panels": _panels,
    }


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dashboards", "mitra.json")
    text = json.dumps(dashboard(), indent=2) + "\n"
    if "--stdout" in sys.argv:
        sys.stdout.write(text)
        return
    with open(out, "w") as f:
        f.write(text)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
