// Nango's own Node SDK (@nangohq/node), unchanged, against a Junction gateway.
//
// Run by tests/integration/test_nango_sdk.c with:
//   JN_SDK_HOST     the gateway's URL          JN_SDK_KEY   the dev secret key
//   JN_SDK_FAKE     the fake provider's URL    JN_SDK_API_KEY  an API key the fake accepts
//   NODE_PATH       where tests/sdk/install.sh put the SDK
//   JN_SDK_SECRET   the value of the environment variable SDK_TOKEN
// The gateway has integration "sdk-notes" (a custom API-key provider on the fake, with
// the actions post-note, read-env and scratch deployed), connection "sdk-c1" on it, and
// the environment variables SDK_TOKEN and SDK_REGION. Every call is checked; the first
// failed check ends the run with its message and a non-zero exit status.
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

  await check('getProviderTemplates', async () => {
    const t = await nango.getProviderTemplates({ provider: 'github' });
    const issue = t.data.find((f) => f.name === 'create-issue');
    assert.equal(issue.type, 'action');
    assert.equal(issue.input, 'CreateIssueInput');
    assert.ok(issue.json_schema.definitions.CreateIssueInput);
    const sync = t.data.find((f) => f.name === 'fetch-issues');
    assert.equal(sync.type, 'sync');
    assert.equal(typeof sync.runs, 'string');
    assert.equal(typeof sync.auto_start, 'boolean');
    const none = await nango.getProviderTemplates({ provider: 'no-such-provider' });
    assert.deepEqual(none.data, []);
  });

  await check('createQuickstartIntegration: no shared developer apps', async () => {
    const refused = await failure(
      nango.createQuickstartIntegration({ provider: 'github', unique_key: 'sdk-quick' }));
    assert.equal(refused.status, 400);
    assert.equal(refused.code, 'invalid_body');
    const gone = await failure(nango.getIntegration({ uniqueKey: 'sdk-quick' }));
    assert.equal(gone.status, 404);
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

  await check('listFunctions / getFunction / getFunctionCode', async () => {
    const all = await nango.listFunctions({ uniqueKey: PCK });
    assert.deepEqual(all.data.map((f) => f.name), ['post-note', 'read-env', 'scratch']);
    assert.deepEqual(all.pagination, { total: 3, page: 0, limit: 20 });
    const note = all.data[0];
    assert.equal(note.type, 'action');
    assert.equal(note.input, 'PostNoteInput');
    assert.deepEqual(note.returns, ['PostNoteOutput']);
    assert.equal(note.enabled, true);
    assert.equal(typeof note.id, 'number');
    assert.ok(!Number.isNaN(Date.parse(note.last_deployed)));
    const page = await nango.listFunctions({ uniqueKey: PCK },
                                           { type: 'action', search: 'E', page: 1, limit: 1 });
    assert.deepEqual(page.data.map((f) => f.name), ['read-env']);
    assert.deepEqual(page.pagination, { total: 2, page: 1, limit: 1 }); /* post-note, read-env */
    const syncs = await nango.listFunctions({ uniqueKey: PCK }, { type: 'sync' });
    assert.deepEqual(syncs.data, []);
    const bad = await failure(nango.listFunctions({ uniqueKey: PCK }, { limit: 500 }));
    assert.equal(bad.status, 400);
    assert.equal(bad.code, 'invalid_query_params');
    const missing = await failure(nango.listFunctions({ uniqueKey: 'no-such-integration' }));
    assert.equal(missing.status, 404);
    assert.equal(missing.code, 'not_found');

    const one = await nango.getFunction({ uniqueKey: PCK, name: 'post-note' });
    assert.equal(one.data.name, 'post-note');
    assert.equal(one.data.id, note.id);
    const typed = await nango.getFunction({ uniqueKey: PCK, name: 'post-note' }, { type: 'action' });
    assert.equal(typed.data.type, 'action');
    const wrong = await failure(nango.getFunction({ uniqueKey: PCK, name: 'post-note' }, { type: 'sync' }));
    assert.equal(wrong.status, 404);

    const code = await nango.getFunctionCode({ uniqueKey: PCK, name: 'post-note' });
    assert.equal(code.type, 'action');
    assert.match(code.code, /type = "action"/);
    const noCode = await failure(nango.getFunctionCode({ uniqueKey: PCK, name: 'nothing-here' }));
    assert.equal(noCode.status, 404);
  });

  await check('deleteFunction', async () => {
    const untyped = await failure(nango.deleteFunction({ uniqueKey: PCK, name: 'scratch' }));
    assert.equal(untyped.status, 400);
    assert.equal(untyped.code, 'invalid_query_params');
    const wrongType = await failure(
      nango.deleteFunction({ uniqueKey: PCK, name: 'scratch' }, { type: 'sync' }));
    assert.equal(wrongType.status, 404);
    const done = await nango.deleteFunction({ uniqueKey: PCK, name: 'scratch' }, { type: 'action' });
    assert.deepEqual(done, { data: { success: true } });
    const gone = await failure(nango.getFunction({ uniqueKey: PCK, name: 'scratch' }));
    assert.equal(gone.status, 404);
    const left = await nango.listFunctions({ uniqueKey: PCK });
    assert.equal(left.pagination.total, 2);
  });

  await check('getEnvironmentVariables', async () => {
    const vars = await nango.getEnvironmentVariables();
    assert.deepEqual(vars, [
      { name: 'SDK_REGION', value: 'eu-west-1' },
      { name: 'SDK_TOKEN', value: process.env.JN_SDK_SECRET },
    ]);
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

  await check('listConnections: filters of both call forms', async () => {
    const byObject = await nango.listConnections({ connectionId: CID, integrationId: [PCK],
                                                   tags: { team: 'blue' }, limit: 5 });
    assert.deepEqual(byObject.connections.map((c) => c.connection_id), [CID]);
    const otherTag = await nango.listConnections({ integrationId: PCK, tags: { team: 'red' } });
    assert.deepEqual(otherTag.connections, []);
    const otherIntegration = await nango.listConnections({ integrationId: 'sdk-none' });
    assert.deepEqual(otherIntegration.connections, []);
    const legacy = await nango.listConnections(CID);
    assert.deepEqual(legacy.connections.map((c) => c.connection_id), [CID]);
    const search = await nango.listConnections(undefined, 'sdk-c');
    assert.ok(search.connections.some((c) => c.connection_id === CID));
    const nobody = await nango.listConnections(undefined, undefined, { endUserId: 'nobody' });
    assert.deepEqual(nobody.connections, []);
  });

  await check('getToken / getRawTokenResponse / createReconnectSession', async () => {
    const token = await nango.getToken(PCK, CID);
    assert.deepEqual(token, { type: 'API_KEY', apiKey: process.env.JN_SDK_API_KEY });
    assert.equal(await nango.getRawTokenResponse(PCK, CID), undefined); /* no raw for an API key */
    const s = await nango.createReconnectSession({ connection_id: CID, integration_id: PCK });
    assert.match(s.data.token, /^nango_connect_session_/);
  });

  await check('proxy: get, post, put, patch, delete, PROPFIND', async () => {
    const me = await nango.get({ endpoint: '/api/me', providerConfigKey: PCK, connectionId: CID });
    assert.equal(me.status, 200);
    const echo = await nango.post({ endpoint: '/api/echo', providerConfigKey: PCK, connectionId: CID,
                                    data: { hello: 'world' } });
    assert.equal(echo.status, 200);
    assert.equal(echo.data.method, 'POST');
    for (const method of ['put', 'patch']) {
      const r = await nango[method]({ endpoint: '/api/echo', providerConfigKey: PCK, connectionId: CID,
                                      data: { n: 1 } });
      assert.equal(r.data.method, method.toUpperCase());
    }
    const del = await nango.delete({ endpoint: '/api/echo', providerConfigKey: PCK, connectionId: CID });
    assert.equal(del.data.method, 'DELETE');
    /* WebDAV methods go through as they are: the fake answers that it has no such endpoint. */
    const dav = await failure(nango.proxy({ method: 'PROPFIND', endpoint: '/api/echo',
                                            providerConfigKey: PCK, connectionId: CID }));
    assert.equal(dav.status, 404);
    assert.equal(dav.data.message, 'no endpoint PROPFIND /api/echo');
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

  await check('a script reads the environment variables', async () => {
    const out = await nango.triggerAction(PCK, CID, 'read-env', {});
    assert.deepEqual(out, { token_reversed: [...process.env.JN_SDK_SECRET].reverse().join(''), count: 2 });
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
    const note = mine.actions.find((a) => a.name === 'post-note');
    assert.equal(note.input, 'PostNoteInput');
    assert.deepEqual(note.returns, ['PostNoteOutput']);
    const openai = await nango.getScriptsConfig('openai');
    const fn = openai.data.find((f) => f.name === 'post-note');
    assert.deepEqual(fn.parameters.required, ['text']);
  });

  await check('syncs and records: triggerSync, syncStatus, listRecords, pause/start, frequency, variants, pruneRecords', async () => {
    const PCK2 = 'sdk-items';
    const CID2 = 'sdk-c2';
    const status = async () => (await nango.syncStatus(PCK2, ['fetch-items'], CID2)).syncs[0];
    await nango.triggerSync(PCK2, ['fetch-items'], CID2);
    const deadline = Date.now() + 60000;
    let st = await status();
    while (st.status !== 'SUCCESS') {
      if (Date.now() > deadline) assert.fail(`the sync did not succeed: ${JSON.stringify(st)}`);
      await new Promise((r) => setTimeout(r, 200));
      st = await status();
    }
    assert.equal(st.latestResult.Item.added, Number(process.env.JN_SDK_ITEMS));
    assert.equal(st.recordCount.Item, Number(process.env.JN_SDK_ITEMS));
    const all = [];
    let cursor = null;
    do {
      const page = await nango.listRecords({ providerConfigKey: PCK2, connectionId: CID2,
                                             model: 'Item', cursor, limit: 40 });
      all.push(...page.records);
      cursor = page.next_cursor;
    } while (cursor);
    assert.equal(all.length, Number(process.env.JN_SDK_ITEMS));
    assert.equal(new Set(all.map((r) => r.id)).size, all.length);
    assert.equal(all[0]._nango_metadata.last_action, 'ADDED');
    const byIds = await nango.listRecords({ providerConfigKey: PCK2, connectionId: CID2,
                                            model: 'Item', ids: ['item-2', 'item-3'] });
    assert.deepEqual(byIds.records.map((r) => r.id).sort(), ['item-2', 'item-3']);

    await nango.pauseSync(PCK2, ['fetch-items'], CID2);
    assert.equal((await status()).status, 'PAUSED');
    await nango.startSync(PCK2, ['fetch-items'], CID2);
    assert.notEqual((await status()).status, 'PAUSED');
    const freq = await nango.updateSyncConnectionFrequency(PCK2, 'fetch-items', CID2, 'every 2 hours');
    assert.equal(freq.frequency, 'every 2 hours');
    assert.equal((await status()).frequency, 'every 2h');

    const variant = await nango.createSyncVariant({ provider_config_key: PCK2, connection_id: CID2,
                                                    name: 'fetch-items', variant: 'eu' });
    assert.equal(variant.variant, 'eu');
    await nango.deleteSyncVariant({ provider_config_key: PCK2, connection_id: CID2,
                                    name: 'fetch-items', variant: 'eu' });

    const pruned = await nango.pruneRecords({ providerConfigKey: PCK2, connectionId: CID2,
                                              model: 'Item', untilCursor: all[9]._nango_metadata.cursor });
    assert.ok(pruned.count >= 10, JSON.stringify(pruned));
    const after = await nango.listRecords({ providerConfigKey: PCK2, connectionId: CID2,
                                            model: 'Item', limit: 11 });
    assert.ok(after.records[0]._nango_metadata.pruned_at);
    assert.equal(after.records[10]._nango_metadata.pruned_at, null);
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
