import asyncio, time
import httpx, pytest
from loadtest.api_server import running_api

@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_x(database_url, own_redis, acme):
    with running_api(database_url, own_redis.url) as api:
        async with httpx.AsyncClient(base_url=api.base_url, timeout=120) as http:
            r = await http.patch(acme.url("settings/update_settings/"), json={"project_rate_limit_value": 1}, headers=acme.write)
            print("before", r.status_code)
            own_redis.freeze()
            t = time.monotonic()
            r = await http.patch(acme.url("settings/update_settings/"), json={"project_rate_limit_value": 2}, headers=acme.write)
            print("frozen write", r.status_code, r.text, time.monotonic() - t)
            t = time.monotonic()
            r = await http.get(acme.url("releases/"), headers=acme.read)
            print("frozen read", r.status_code, time.monotonic() - t)
            own_redis.thaw()
            r = await http.patch(acme.url("settings/update_settings/"), json={"project_rate_limit_value": 3}, headers=acme.write)
            print("after", r.status_code)
