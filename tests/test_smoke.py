from metricsd.app import create_app


async def test_healthz(aiohttp_client, make_config):
    client = await aiohttp_client(create_app(make_config()))
    resp = await client.get("/healthz")
    assert resp.status == 200
    assert (await resp.json())["status"] == "ok"
    ready = await client.get("/readyz")
    assert ready.status == 200
