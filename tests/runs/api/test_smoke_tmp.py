import json, pytest
from tests.runs.api.conftest import api_as, VALID_PLAN, noop_tool  # noqa
pytestmark = pytest.mark.django_db

def test_smoke(operator, noop_tool):
    c = api_as(operator)
    r = c.post("/tasks", {"plan": VALID_PLAN}); print(r.status_code, r.content[:600])
    r = c.post("/tasks", {"plan": "steps: [unclosed"}); print(r.status_code, r.content[:600])
    r = c.post("/tasks", {"plan": {"steps": [{"id": "a", "action": "zzz"}]}}); print(r.status_code, r.content[:600])
    r = c.post("/tasks", "{bad json"); print(r.status_code, r.content[:600])
    r = c.post("/tasks", {"plan": "x", "title": "a\u0000b"}); print(r.status_code, r.content[:600])
    r = c.get("/runs", {"status": ["queued", "failed"], "limit": 2}); print(r.status_code, r.content[:900])
    r = c.get("/runs", {"status": "bogus"}); print(r.status_code, r.content[:600])
    r = c.get("/runs/1/events"); print(r.status_code, r.content[:900])
    r = c.get("/runs/1/steps"); print(r.status_code, r.content[:300])
    r = c.get("/runs/1/plans"); print(r.status_code, r.content[:300])
    r = c.post("/runs/1/cancel"); print(r.status_code, r.content[:300])
    r = c.post("/runs/1/cancel"); print(r.status_code, r.content[:300])
    r = c.get("/runs/99999999999999999999999"); print(r.status_code, r.content[:300])
    r = c.get("/tools"); print(r.status_code, r.content[:300])
    r = c.get("/tools.yaml"); print(r.status_code, r.content[:300])
    r = c.get("/tokens"); print(r.status_code, r.content[:300])
    r = c.post("/tokens", {"name": "x"}); print(r.status_code, r.content[:300])
    r = api_as(None).get("/runs"); print(r.status_code, r.content[:300], r.headers)
    r = c.get("/docs"); print(r.status_code, r.content[:3000])
