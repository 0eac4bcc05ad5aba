from __future__ import annotations
import asyncio, time
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, events, from_schema
from tests.api.conftest import ProjectAccess

def _run(url, access):
    config = SchemathesisConfig.from_dict({
        "seed": 1,
        "headers": access.write,
        "parameters": {"project_id": access.project_id},
        "checks": {"enabled": True},
        "generation": {"allow-x00": False, "max-examples": 25, "codec": "utf-8", "deterministic": True},
        "workers": 1,
    })
    schema = schemathesis.openapi.from_url(url, config=config)
    out = []
    counts = {}
    for event in from_schema(schema).execute():
        name = type(event).__name__
        counts[name] = counts.get(name, 0) + 1
        if isinstance(event, events.ScenarioFinished) and event.status in (Status.FAILURE, Status.ERROR):
            for case_id, nodes in event.recorder.checks.items():
                for node in nodes:
                    if node.failure_info is not None:
                        f = node.failure_info.failure
                        case = event.recorder.cases[case_id].value
                        out.append(f"{event.phase} {event.label} {node.name}: {f.title} :: {getattr(f,'message','')[:300]} :: {case.method} {case.formatted_path} q={case.query} body={str(case.body)[:300]} mt={case.media_type} status={event.recorder.find_response(case_id=case_id).status_code if event.recorder.find_response(case_id=case_id) else None}")
        elif isinstance(event, events.NonFatalError):
            out.append(f"ERROR {event.label}: {event.value!r}")
        elif isinstance(event, events.FatalError):
            out.append(f"FATAL {event.exception!r}")
        elif isinstance(event, events.EngineFinished):
            out.append(f"finished {event.stop_reason} {[str(f)[:300] for f in event.failures]}")
    print(counts)
    return out

async def test_exp(live_server: str, acme: ProjectAccess) -> None:
    t = time.time()
    out = await asyncio.to_thread(_run, f"{live_server}/api/schema/", acme)
    print("time", time.time() - t)
    seen=set()
    for line in out:
        k=line[:150]
        if k in seen: continue
        seen.add(k); print(line); print('---')
    assert False
