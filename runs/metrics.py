"""Prometheus metrics read from the database at each scrape.

The database is the one place every worker process writes, so the figures are right however
many processes execute runs, with no multiprocess files to share or clean. Each scrape is a
handful of grouped queries (buckets counted in SQL, never rows loaded).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import timedelta
from typing import Any

from django.db.models import (
    Count,
    DurationField,
    Exists,
    ExpressionWrapper,
    F,
    OuterRef,
    Q,
    QuerySet,
    Sum,
)
from django.utils import timezone
from django_tasks_db.models import DBTaskResult
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from reviews.models import ReviewItem, ReviewKind, ReviewStatus
from runs.models import LlmCall, Run, Step
from runs.pools import queues_overview
from runs.statemachine import RUN_TERMINAL

RUN_BUCKETS = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 14400.0)
STEP_BUCKETS = (0.05, 0.25, 1.0, 5.0, 15.0, 60.0, 300.0)
PICKUP_BUCKETS = (0.05, 0.25, 1.0, 5.0, 30.0, 120.0)


def _histogram(
    family: HistogramMetricFamily,
    rows: QuerySet[Any],
    *,
    start: str,
    end: str,
    buckets: Sequence[float],
    labels: Sequence[str] = (),
) -> HistogramMetricFamily:
    """Fill ``family`` with one histogram per label group of ``rows``, counted in SQL."""
    took = ExpressionWrapper(F(end) - F(start), output_field=DurationField())
    bounds = {
        f"le{i}": Count("pk", filter=Q(took__lte=timedelta(seconds=b)))
        for i, b in enumerate(buckets)
    }
    grouped = (
        rows.filter(**{f"{start}__isnull": False, f"{end}__isnull": False})
        .annotate(took=took)
        .values(*labels)
        .order_by(*labels)
        .annotate(n=Count("pk"), total=Sum("took"), **bounds)
    )
    for row in grouped:
        cumulative = [(_le(b), row[f"le{i}"]) for i, b in enumerate(buckets)]
        total = row["total"]
        family.add_metric(
            [str(row[name]) for name in labels],
            [*cumulative, ("+Inf", row["n"])],
            total.total_seconds() if total is not None else 0.0,
        )
    return family


def _le(bound: float) -> str:
    return repr(float(bound))


def _counts(
    family: CounterMetricFamily | GaugeMetricFamily, rows: Iterable[Any], *labels: str
) -> CounterMetricFamily | GaugeMetricFamily:
    for row in rows:
        family.add_metric([str(row[name]) for name in labels], row["n"])
    return family


def _first_runs_of_steps() -> QuerySet[Step]:
    """Step rows that really ran: a replan's copy of a finished step is not counted again."""
    earlier = Step.objects.filter(
        run_id=OuterRef("run_id"),
        key=OuterRef("key"),
        started_at=OuterRef("started_at"),
        plan__version__lt=OuterRef("plan__version"),
    )
    return Step.objects.filter(started_at__isnull=False).exclude(Exists(earlier))


class DatabaseCollector(Collector):
    """Every metric in docs/observability.md, from the current database rows."""

    def collect(self) -> Iterator[Metric]:
        yield from self._runs()
        yield from self._queue()
        yield from self._reviews()
        yield from self._models()

    def _runs(self) -> Iterator[Metric]:
        yield _counts(
            CounterMetricFamily(
                "plannerweb_runs_finished", "Runs that reached a final status.", labels=["status"]
            ),
            Run.objects.filter(status__in=RUN_TERMINAL)
            .values("status")
            .order_by("status")
            .annotate(n=Count("pk")),
            "status",
        )
        yield _counts(
            GaugeMetricFamily("plannerweb_runs", "Runs now in each status.", labels=["status"]),
            Run.objects.values("status").order_by("status").annotate(n=Count("pk")),
            "status",
        )
        yield _histogram(
            HistogramMetricFamily(
                "plannerweb_run_duration_seconds",
                "Finished runs: first start to finish.",
                labels=["status"],
            ),
            Run.objects.filter(status__in=RUN_TERMINAL),
            start="started_at",
            end="finished_at",
            buckets=RUN_BUCKETS,
            labels=["status"],
        )
        yield _histogram(
            HistogramMetricFamily(
                "plannerweb_step_duration_seconds",
                "Finished steps (each real start once), by tool and status.",
                labels=["tool", "status"],
            ),
            _first_runs_of_steps(),
            start="started_at",
            end="finished_at",
            buckets=STEP_BUCKETS,
            labels=["tool_name", "status"],
        )

    def _queue(self) -> Iterator[Metric]:
        waiting = DBTaskResult.objects.filter(status="READY")
        yield _counts(
            GaugeMetricFamily(
                "plannerweb_queue_depth", "Tasks waiting for a worker.", labels=["queue"]
            ),
            waiting.values("queue_name").order_by("queue_name").annotate(n=Count("pk")),
            "queue_name",
        )
        yield _histogram(
            HistogramMetricFamily(
                "plannerweb_pickup_latency_seconds",
                "Tasks taken by a worker: due (enqueued or run-after) to started.",
                labels=["queue"],
            ),
            DBTaskResult.objects.all(),
            start="run_after",
            end="started_at",
            buckets=PICKUP_BUCKETS,
            labels=["queue_name"],
        )
        pools = GaugeMetricFamily(
            "plannerweb_pool_steps",
            "Steps of queued tools, waiting for or held by a pool worker.",
            labels=["queue", "state"],
        )
        pool_workers = GaugeMetricFamily(
            "plannerweb_pool_workers", "Live workers serving each tool queue.", labels=["queue"]
        )
        for q in queues_overview():
            pools.add_metric([q.name, "pending"], q.pending)
            pools.add_metric([q.name, "running"], q.running)
            pool_workers.add_metric([q.name], len(q.workers))
        yield pools
        yield pool_workers
        active = Run.objects.filter(lease_expires_at__gt=timezone.now()).exclude(lease_owner="")
        leases = GaugeMetricFamily("plannerweb_active_leases", "Runs a live worker holds now.")
        leases.add_metric([], active.count())
        yield leases

    def _reviews(self) -> Iterator[Metric]:
        open_items = ReviewItem.objects.filter(status=ReviewStatus.OPEN)
        backlog = GaugeMetricFamily(
            "plannerweb_review_backlog", "Open review items by kind.", labels=["kind"]
        )
        found = dict(open_items.values_list("kind").order_by("kind").annotate(n=Count("pk")))
        for kind in ReviewKind.values:
            backlog.add_metric([kind], found.get(kind, 0))
        yield backlog
        overdue = GaugeMetricFamily(
            "plannerweb_review_overdue", "Open review items past their due time.", labels=["kind"]
        )
        late = open_items.filter(due_at__lt=timezone.now())
        found = dict(late.values_list("kind").order_by("kind").annotate(n=Count("pk")))
        for kind in ReviewKind.values:
            overdue.add_metric([kind], found.get(kind, 0))
        yield overdue
        yield _counts(
            CounterMetricFamily(
                "plannerweb_escalations", "Escalations opened, by cause.", labels=["cause"]
            ),
            ReviewItem.objects.filter(kind=ReviewKind.ESCALATION)
            .values("cause")
            .order_by("cause")
            .annotate(n=Count("pk")),
            "cause",
        )

    def _models(self) -> Iterator[Metric]:
        calls = (
            LlmCall.objects.values("provider", "model", "purpose")
            .order_by("provider", "model", "purpose")
            .annotate(n=Count("pk"), tin=Sum("tokens_in"), tout=Sum("tokens_out"), cost=Sum("cost"))
        )
        count = CounterMetricFamily(
            "plannerweb_model_calls",
            "Model calls by purpose (repair: a repair round).",
            labels=["provider", "model", "purpose"],
        )
        tokens = CounterMetricFamily(
            "plannerweb_model_tokens", "Model tokens.", labels=["provider", "model", "direction"]
        )
        cost = CounterMetricFamily(
            "plannerweb_model_cost_usd",
            "US dollars of priced model calls.",
            labels=["provider", "model"],
        )
        per_model: dict[tuple[str, str], list[float]] = {}
        for row in calls:
            count.add_metric([row["provider"], row["model"], row["purpose"]], row["n"])
            sums = per_model.setdefault((row["provider"], row["model"]), [0, 0, 0.0])
            sums[0] += row["tin"] or 0
            sums[1] += row["tout"] or 0
            sums[2] += float(row["cost"] or 0)
        for (provider, model), (tin, tout, usd) in per_model.items():
            tokens.add_metric([provider, model, "input"], tin)
            tokens.add_metric([provider, model, "output"], tout)
            cost.add_metric([provider, model], usd)
        yield count
        yield tokens
        yield cost


def registry() -> CollectorRegistry:
    """A registry of its own (not the process-global one): only database figures."""
    fresh = CollectorRegistry(auto_describe=False)
    fresh.register(DatabaseCollector())
    return fresh
