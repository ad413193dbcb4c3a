"""The new-run form, and the endpoint that checks its plan as the operator types (htmx)."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from runs.demo import demo_plan, demo_plans
from runs.lifecycle.planning import run_submit_task
from runs.lifecycle.submit import run_submit_plan
from runs.lifecycle.words import WordsPlannerUnavailable, WordsPlannerUnreachable, words_map
from runs.permissions import AuthenticatedHttpRequest, is_operator, role_required
from runs.planning.availability import planner_statuses
from runs.planning.options import PlannerOptionsError
from runs.planning.providers import LLM_PROVIDERS
from runs.planning.validation import ValidatedPlan, validate_with_registry
from runs.planning.words import MAX_STEPS, WordsMapping, map_text, plan_text, steps_in_words
from runs.views.forms import NewRunForm, NewTaskForm


def _problems(validated: ValidatedPlan) -> list[dict[str, str]]:
    return [{"path": p.path, "code": p.code, "message": p.message} for p in validated.problems]


@require_http_methods(["GET", "POST"])
@role_required(is_operator)
def run_new(request: AuthenticatedHttpRequest) -> HttpResponse:
    """A form for a hand-written plan; only a plan without problems becomes a run."""
    chosen = request.GET.get("demo", "")
    if request.method == "POST":
        form = NewRunForm(request.POST)
        if form.is_valid():
            validated = validate_with_registry(form.document)
            if validated.is_valid:
                run = run_submit_plan(
                    title=form.cleaned_data["title"],
                    document=form.document,
                    submitted_by=request.user,
                    max_parallel=form.cleaned_data["max_parallel"],
                    validated=validated,
                    budgets=form.budgets(),
                    replanner=form.replanner_options(),
                    retain_days=form.cleaned_data.get("retain_days"),
                )
                messages.success(request, f"Run {run.pk} submitted ({run.status}).")
                return redirect("runs:detail", run_id=run.pk)
            form.add_plan_problems(_problems(validated))
    else:
        demo = demo_plan(chosen) if chosen else None
        if chosen and demo is None:
            messages.warning(request, f"There is no demo plan {chosen[:40]!r}.")
        initial = {"title": demo.goal, "plan": demo.text} if demo else {}
        if demo is not None and "\n    fallback:" in demo.text:  # it is meant to replan offline
            initial["replanner"] = "playbook"
        form = NewRunForm(initial=initial)
    return render(
        request,
        "runs/run_new.html",
        {"form": form, "task_form": NewTaskForm(), "demos": demo_plans(), "chosen": chosen},
    )


@require_http_methods(["GET", "POST"])
@role_required(is_operator)
def run_new_task(request: AuthenticatedHttpRequest) -> HttpResponse:
    """A task for a planner (the other way in): options default to the deployment's settings."""

    task_form = NewTaskForm(request.POST or None)
    if request.method == "POST" and task_form.is_valid():
        data = task_form.cleaned_data
        try:
            run = run_submit_task(
                title=data["title"],
                description=data["description"],
                submitted_by=request.user,
                max_parallel=data["max_parallel"],
                budgets=task_form.budgets(),
                retain_days=data.get("retain_days"),
                confirm_plan=data.get("confirm_plan") or None,
                **{k: data[k] for k in NewTaskForm.OPTIONS},
            )
        except PlannerOptionsError as exc:  # settings changed between check and submit
            task_form.add_error(exc.field if exc.field in task_form.fields else None, str(exc))
        else:
            messages.success(request, f"Run {run.pk} submitted for planning ({run.status}).")
            return redirect("runs:detail", run_id=run.pk)
    return render(
        request,
        "runs/run_new.html",
        {
            "form": NewRunForm(),
            "task_form": task_form,
            "demos": demo_plans(),
            "chosen": "",
            "task_first": True,
        },
        # A planner the deployment cannot use, submitted anyway: refused, with what to set.
        status=422 if task_form.unavailable else 200,
    )


@require_POST
@role_required(is_operator)
def run_new_check(request: HttpRequest) -> HttpResponse:
    """Check the plan text without running anything; renders its problems (or its step count)."""
    text = request.POST.get("plan", "")
    context: dict[str, object] = {"empty": not text.strip()}
    words = map_text(text) if text.strip() else None
    if words is not None:  # a list of steps in words: propose a plan to confirm
        context.update(_words_context(words))
    elif text.strip():
        form = NewRunForm({"plan": text, "title": "check"})
        if not form.is_valid() and "plan" in form.errors:
            context["syntax"] = form.errors["plan"]
        else:
            validated = validate_with_registry(form.document)
            context["problems"] = _problems(validated)
            context["is_valid"] = validated.is_valid
            doc = validated.document
            context["steps"] = len(doc.steps) if doc is not None else 0
    return render(request, "runs/_plan_check.html", context)


def _words_context(words: WordsMapping) -> dict[str, object]:
    """What the check shows of a mapping: its table, its plan, and the models that could map it."""
    context: dict[str, object] = {
        "words": words,
        "word_planners": planner_statuses(LLM_PROVIDERS),
    }
    if words.document is not None:
        context["words_plan"] = plan_text(words.document)
    return context


@require_POST
@role_required(is_operator)
def run_new_words(request: HttpRequest) -> HttpResponse:
    """Map the steps in words with the chosen model (one call).

    422 when it is not configured here, 503 when its server cannot be reached; both keep
    the offline mapping on the page, with the reason above it.
    """
    text = request.POST.get("plan", "")
    lines = steps_in_words(text)
    if lines is None:
        context: dict[str, object] = {"syntax": 'Write one step a line, as "1. ..." or "- ...".'}
        return render(request, "runs/_plan_check.html", context, status=422)
    planner = request.POST.get("planner", "")
    try:
        words = words_map(lines=lines[:MAX_STEPS], planner=planner)
    except (WordsPlannerUnavailable, PlannerOptionsError) as exc:
        return _words_refused(request, text, str(exc), status=422)
    except WordsPlannerUnreachable as exc:
        return _words_refused(request, text, str(exc), status=503)
    return render(request, "runs/_plan_check.html", _words_context(words))


def _words_refused(request: HttpRequest, text: str, reason: str, *, status: int) -> HttpResponse:
    """The offline mapping of ``text`` with why the chosen model did not map it."""
    offline = map_text(text)
    assert offline is not None  # the same lines, mapped offline
    context = {**_words_context(offline), "words_error": reason}
    return render(request, "runs/_plan_check.html", context, status=status)
