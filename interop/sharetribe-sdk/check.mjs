// Drives the official Sharetribe SDKs, a gRPC-Web client and CORS preflights against a real
// `tessera serve`. Run by scripts/sdk-interop.sh, which starts the server, registers the
// clients and the user, and passes them here in the environment:
//
//   TESSERA_HTTP_URL       the HTTP listener (the SDKs' baseUrl), e.g. http://127.0.0.1:8080
//   TESSERA_GRPC_URL       the gRPC port, for gRPC-Web, e.g. http://127.0.0.1:50051
//   MARKETPLACE_ID/SECRET  a marketplace client that holds a secret (token exchange)
//   INTEGRATION_ID/SECRET  an integration client
//   USERNAME, PASSWORD     a registered user
//   ALLOWED_ORIGIN         the one origin in TESSERA_CORS_ORIGINS
//
// Only the SDKs' authentication calls matter: their Marketplace and Integration API calls are
// not Tessera's (Tessera answers them 404), but the first such call is what makes an SDK fetch
// its token on its own.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

import flexSdk from 'sharetribe-flex-sdk';
import integrationSdk from 'sharetribe-flex-integration-sdk';
import { createClient } from '@connectrpc/connect';
import { createGrpcWebTransport } from '@connectrpc/connect-web';
import { createFileRegistry, fromBinary } from '@bufbuild/protobuf';
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const httpUrl = env('TESSERA_HTTP_URL');
const grpcUrl = env('TESSERA_GRPC_URL');
const marketplace = { id: env('MARKETPLACE_ID'), secret: env('MARKETPLACE_SECRET') };
const integration = { id: env('INTEGRATION_ID'), secret: env('INTEGRATION_SECRET') };
const username = env('USERNAME');
const password = env('PASSWORD');
const allowedOrigin = env('ALLOWED_ORIGIN');

let checks = 0;
const step = async (name, fn) => {
  await fn();
  checks += 1;
  console.log(`sdk-interop: ok: ${name}`);
};

/** The Marketplace API is not Tessera's: the call fails with 404 once the SDK holds a token. */
const expectNotTessera = async (call) => {
  await assert.rejects(call, (e) => e.status === 404);
};

/** RFC 7662 introspection over HTTP, as an integration client. */
let introspectionBearer;
const introspect = async (token) => {
  if (!introspectionBearer) {
    const res = await fetch(`${httpUrl}/v1/auth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'client_credentials',
        client_id: integration.id,
        client_secret: integration.secret,
      }),
    });
    assert.equal(res.status, 200);
    introspectionBearer = (await res.json()).access_token;
  }
  const res = await fetch(`${httpUrl}/v1/auth/introspect`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Bearer ${introspectionBearer}`,
    },
    body: new URLSearchParams({ token }),
  });
  assert.equal(res.status, 200);
  return res.json();
};

const marketplaceSdk = (store = flexSdk.tokenStore.memoryStore()) => ({
  store,
  sdk: flexSdk.createInstance({
    clientId: marketplace.id,
    clientSecret: marketplace.secret,
    baseUrl: httpUrl,
    tokenStore: store,
  }),
});

// --- sharetribe-flex-sdk -----------------------------------------------------------------
{
  const { sdk, store } = marketplaceSdk();

  await step('the marketplace SDK fetches an anonymous token on its own', async () => {
    await expectNotTessera(sdk.marketplace.show());
    const info = await sdk.authInfo();
    assert.equal(info.isAnonymous, true);
    assert.deepEqual(info.scopes, ['public-read']);
    const stored = await store.getToken();
    assert.equal(stored.refresh_token, undefined);
    assert.equal((await introspect(stored.access_token)).active, true);
  });

  let loggedIn;
  await step('login gives a user token; authInfo says so', async () => {
    const res = await sdk.login({ username, password });
    assert.equal(res.status, 200);
    assert.equal(res.data.scope, 'user');
    const info = await sdk.authInfo();
    assert.equal(info.isAnonymous, false);
    assert.deepEqual(info.scopes, ['user']);
    loggedIn = await store.getToken();
    assert.ok(loggedIn.refresh_token);
    const introspected = await introspect(loggedIn.access_token);
    assert.equal(introspected.active, true);
    assert.equal(introspected.scope, 'user');
  });

  await step('exchangeToken gives a trusted:user token for the same user and session', async () => {
    const res = await sdk.exchangeToken();
    assert.equal(res.status, 200);
    assert.equal(res.data.scope, 'trusted:user');
    const trusted = await introspect(res.data.access_token);
    const user = await introspect(loggedIn.access_token);
    assert.equal(trusted.scope, 'trusted:user');
    assert.equal(trusted.sub, user.sub);
    assert.equal(trusted.sid, user.sid);
  });

  await step('logout revokes the session: its tokens introspect inactive', async () => {
    const res = await sdk.logout();
    assert.equal(res.status, 200);
    assert.deepEqual(await sdk.authInfo(), {});
    assert.deepEqual(await introspect(loggedIn.refresh_token), { active: false });
    assert.deepEqual(await introspect(loggedIn.access_token), { active: false });
  });

  await step('a wrong password fails with invalid_grant', async () => {
    await assert.rejects(sdk.login({ username, password: 'not the password' }), (e) => {
      assert.ok([400, 401].includes(e.status), `status ${e.status}`);
      assert.equal(e.data.error, 'invalid_grant');
      return true;
    });
  });
}

{
  // A stale access token: the SDK's logout meets a 401, refreshes and revokes again. The store
  // remembers every token the SDK saved, so that the refreshed pair can be checked too.
  const saved = [];
  const memory = flexSdk.tokenStore.memoryStore();
  const store = {
    getToken: memory.getToken,
    removeToken: memory.removeToken,
    setToken: (token) => {
      saved.push(token);
      return memory.setToken(token);
    },
  };
  const { sdk } = marketplaceSdk(store);
  await step('logout with a stale access token refreshes after the 401, then revokes', async () => {
    await sdk.login({ username, password });
    const first = await store.getToken();
    memory.setToken({ ...first, access_token: 'v4.public.stale' });
    const res = await sdk.logout();
    assert.equal(res.status, 200);
    assert.equal(saved.length, 2, 'the SDK saved the refreshed pair');
    const refreshed = saved[1];
    assert.notEqual(refreshed.refresh_token, first.refresh_token);
    assert.deepEqual(await introspect(refreshed.refresh_token), { active: false });
    assert.deepEqual(await introspect(refreshed.access_token), { active: false });
    assert.deepEqual(await introspect(first.access_token), { active: false });
  });
}

// --- sharetribe-flex-integration-sdk -----------------------------------------------------
await step('the integration SDK authenticates with its secret and gets an integ token', async () => {
  const store = integrationSdk.tokenStore.memoryStore();
  const sdk = integrationSdk.createInstance({
    clientId: integration.id,
    clientSecret: integration.secret,
    baseUrl: httpUrl,
    tokenStore: store,
  });
  await expectNotTessera(sdk.marketplace.show());
  const stored = await store.getToken();
  assert.equal(stored.scope, 'integ');
  assert.ok(stored.refresh_token);
  const introspected = await introspect(stored.access_token);
  assert.equal(introspected.active, true);
  assert.equal(introspected.client_id, integration.id);
});

// --- gRPC-Web ----------------------------------------------------------------------------
await step('a gRPC-Web client gets a token from the gRPC port', async () => {
  // The released contract's descriptor set (google/protobuf imports included): no codegen.
  const descriptors = readFileSync(new URL('../../proto/released.binpb', import.meta.url));
  const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, descriptors));
  const service = registry.getService('tessera.auth.v1.AuthService');
  assert.ok(service, 'AuthService in the descriptor set');
  const client = createClient(
    service,
    createGrpcWebTransport({ baseUrl: grpcUrl, useBinaryFormat: true }),
  );
  const res = await client.issueToken({
    clientId: marketplace.id,
    grant: { case: 'clientCredentials', value: {} },
  });
  assert.equal(res.scope, 'public-read');
  assert.equal((await introspect(res.accessToken)).active, true);
});

// --- CORS --------------------------------------------------------------------------------
const preflight = (url, origin, headers) =>
  fetch(url, {
    method: 'OPTIONS',
    headers: {
      origin,
      'access-control-request-method': 'POST',
      'access-control-request-headers': headers,
    },
  });

await step('CORS preflights pass from the allowed origin and fail from another', async () => {
  const targets = [
    [`${httpUrl}/v1/auth/token`, 'authorization,content-type'],
    [`${grpcUrl}/tessera.auth.v1.AuthService/IssueToken`, 'content-type,x-grpc-web,x-user-agent'],
  ];
  for (const [url, headers] of targets) {
    const allowed = await preflight(url, allowedOrigin, headers);
    assert.ok(allowed.ok, `${url}: ${allowed.status}`);
    assert.equal(allowed.headers.get('access-control-allow-origin'), allowedOrigin, url);
    assert.notEqual(allowed.headers.get('access-control-allow-credentials'), 'true', url);
    const refused = await preflight(url, 'https://elsewhere.example', headers);
    assert.equal(refused.headers.get('access-control-allow-origin'), null, url);
  }
});

console.log(`sdk-interop: OK: ${checks} checks passed`);
