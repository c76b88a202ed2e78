// Nango's own Node SDK (@nangohq/node), unchanged, against a Junction gateway.
//
// Run by tests/integration/test_nango_sdk.c with:
//   JN_SDK_HOST     the gateway's URL          JN_SDK_KEY   the dev secret key
//   JN_SDK_FAKE     the fake provider's URL    JN_SDK_API_KEY  an API key the fake accepts
//   NODE_PATH       where tests/sdk/install.sh put the SDK
// The gateway has integration "sdk-notes" (a custom API-key provider on the fake, with
// the post-note action deployed) and connection "sdk-c1" on it. Every call is checked;
// the first failed check ends the run with its message and a non-zero exit status.
'use strict';
const assert = require('node:assert/strict');
const { Nango } = require('@nangohq/node');

const host = process.env.JN_SDK_HOST;
const nango = new Nango({ secretKey: process.env.JN_SDK_KEY, host });
const PCK = 'sdk-notes';
const CID = 'sdk-c1';

let step = '';
async function check(name, fn) {
  step = name;
  await fn();
  console.log(`ok - ${name}`);
}

// The status and Nango error code of a call that must fail.
async function failure(promise) {
  try {
    await promise;
  } catch (e) {
    if (!e.response) throw e;
    return { status: e.response.status, code: e.response.data?.error?.code, data: e.response.data };
  }
  assert.fail('the call succeeded');
}

async function main() {
  await check('listProviders / getProvider', async () => {
    const all = await nango.listProviders({ search: 'github' });
    assert.ok(all.data.some((p) => p.name === 'github'));
    const one = await nango.getProvider({ provider: 'github' });
    assert.equal(one.data.name, 'github');
    assert.equal(one.data.auth_mode, 'OAUTH2');
  });

  await check('integrations: create, get, update, list, delete', async () => {
    const created = await nango.createIntegration({
      provider: 'github', unique_key: 'sdk-github',
      credentials: { type: 'OAUTH2', client_id: 'id-1', client_secret: 'secret-1', scopes: 'repo' },
    });
    assert.equal(created.data.unique_key, 'sdk-github');
    const got = await nango.getIntegration({ uniqueKey: 'sdk-github' }, { include: ['credentials'] });
    assert.equal(got.data.provider, 'github');
    assert.equal(got.data.credentials.client_id, 'id-1');
    const updated = await nango.updateIntegration({ uniqueKey: 'sdk-github' }, { display_name: 'GH' });
    assert.equal(updated.data.display_name, 'GH');
    const list = await nango.listIntegrations();
    assert.ok(list.configs.some((i) => i.unique_key === 'sdk-github'));
    await nango.deleteIntegration('sdk-github');
    const gone = await failure(nango.getIntegration({ uniqueKey: 'sdk-github' }));
    assert.equal(gone.status, 404);
  });

  await check('createConnectSession', async () => {
    const s = await nango.createConnectSession({ end_user: { id: 'sdk-user', email: 'u@example.com' },
                                                 allowed_integrations: [PCK] });
    assert.match(s.data.token, /^nango_connect_session_/);
    assert.ok(s.data.connect_link.includes(s.data.token));
  });

  await check('getConnection / listConnections', async () => {
    const c = await nango.getConnection(PCK, CID);
    assert.equal(c.connection_id, CID);
    assert.equal(c.provider_config_key, PCK);
    assert.equal(c.credentials.type, 'API_KEY');
    assert.equal(c.credentials.apiKey, process.env.JN_SDK_API_KEY);
    const list = await nango.listConnections();
    assert.ok(list.connections.some((x) => x.connection_id === CID));
    const missing = await failure(nango.getConnection(PCK, 'nobody'));
    assert.equal(missing.status, 404);
  });

  await check('metadata: set, update, get', async () => {
    await nango.setMetadata(PCK, CID, { plan: 'pro', seats: 3 });
    await nango.updateMetadata(PCK, CID, { seats: 4 });
    const m = await nango.getMetadata(PCK, CID);
    assert.deepEqual(m, { plan: 'pro', seats: 4 });
  });

  await check('patchConnection', async () => {
    await nango.patchConnection({ connectionId: CID, provider_config_key: PCK },
                                { tags: { team: 'blue' } });
    const c = await nango.getConnection(PCK, CID);
    assert.equal(c.tags.team, 'blue');
  });

  await check('proxy: get and post', async () => {
    const me = await nango.get({ endpoint: '/api/me', providerConfigKey: PCK, connectionId: CID });
    assert.equal(me.status, 200);
    const echo = await nango.post({ endpoint: '/api/echo', providerConfigKey: PCK, connectionId: CID,
                                    data: { hello: 'world' } });
    assert.equal(echo.status, 200);
    assert.equal(echo.data.method, 'POST');
  });

  await check('triggerAction', async () => {
    const out = await nango.triggerAction(PCK, CID, 'post-note', { text: 'from the SDK', tags: ['x'] });
    assert.equal(out.method, 'POST');
    assert.deepEqual(out.tags, ['x']);
    const bad = await failure(nango.triggerAction(PCK, CID, 'post-note', { text: 5 }));
    assert.equal(bad.status, 400);
    assert.equal(bad.code, 'invalid_action_input');
    const failed = await failure(nango.triggerAction(PCK, CID, 'post-note', { text: '' }));
    assert.equal(failed.status, 500);
    assert.equal(failed.code, 'action_script_failure');
    const unknown = await failure(nango.triggerAction(PCK, CID, 'no-such-action', {}));
    assert.equal(unknown.status, 404);
  });

  await check('triggerActionAsync / getAsyncActionResult', async () => {
    const started = await nango.triggerActionAsync(PCK, CID, 'post-note', { text: 'later' });
    assert.match(started.id, /^[0-9a-f-]{36}$/);
    assert.equal(started.statusUrl, `/action/${started.id}`);
    const deadline = Date.now() + 30000;
    for (;;) {
      try {
        const out = await nango.getAsyncActionResult(started);
        assert.equal(out.method, 'POST');
        break;
      } catch (e) {
        if (e.response?.status !== 404 || Date.now() > deadline) throw e;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    const byId = await nango.getAsyncActionResult({ id: started.id });
    assert.equal(byId.method, 'POST');
  });

  await check('getScriptsConfig', async () => {
    const configs = await nango.getScriptsConfig();
    const mine = configs.find((c) => c.providerConfigKey === PCK);
    assert.ok(mine, 'the integration is listed');
    assert.ok(mine.actions.some((a) => a.name === 'post-note'));
  });

  await check('deleteConnection', async () => {
    await nango.deleteConnection(PCK, CID);
    const gone = await failure(nango.getConnection(PCK, CID));
    assert.equal(gone.status, 404);
  });
}

main().then(
  () => console.log('all SDK checks passed'),
  (e) => {
    console.error(`not ok - ${step}: ${e.stack || e}`);
    if (e.response) console.error(`  HTTP ${e.response.status}: ${JSON.stringify(e.response.data)}`);
    process.exit(1);
  },
);
