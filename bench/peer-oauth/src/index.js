// The peer of our token endpoint for the load benchmark (BENCHMARKS.md, "The peer"): the
// library's `OAuthProvider` with its own token endpoint (`POST /oauth/token`) and its KV
// storage as it ships. Everything else here is set-up for the benchmark, never measured:
//
//   POST /setup         answers "ready" (the benchmark's readiness probe)
//   POST /setup/client  registers one confidential client (client_secret_basic) through the
//                       library's createClient(); answers {client_id, authorization}, the
//                       `Authorization: Basic` value of its id and secret
//   POST /setup/codes   body {client_id, prefix, count}: completes `count` authorizations
//                       server-side, one new user each (`<prefix><i>`), through the
//                       library's parseAuthRequest() + completeAuthorization(), as a consent
//                       page would after the user approved; answers {codes: [...]}
//
// The authorization endpoint is a browser flow (sign-in and consent), which the benchmark
// replaces with the helpers above; the measured calls are the library's token endpoint,
// called exactly as a client calls it.
import { OAuthProvider } from '@cloudflare/workers-oauth-provider';

const REDIRECT_URI = 'https://orchestrator.example/callback';
const SCOPES = ['resources:read', 'resources:write'];

async function setupCodes(request, env) {
  const { client_id: clientId, prefix, count } = await request.json();
  const origin = new URL(request.url).origin;
  const codes = [];
  for (let i = 0; i < count; i++) {
    const authorize = new URL('/authorize', origin);
    authorize.searchParams.set('response_type', 'code');
    authorize.searchParams.set('client_id', clientId);
    authorize.searchParams.set('redirect_uri', REDIRECT_URI);
    authorize.searchParams.set('scope', SCOPES.join(' '));
    authorize.searchParams.set('state', `${prefix}${i}`);
    const oauthRequest = await env.OAUTH_PROVIDER.parseAuthRequest(new Request(authorize));
    const { redirectTo } = await env.OAUTH_PROVIDER.completeAuthorization({
      request: oauthRequest,
      userId: `${prefix}${i}`,
      metadata: { label: 'bench' },
      scope: oauthRequest.scope,
      props: { account: `acct_${prefix}${i}` },
    });
    codes.push(new URL(redirectTo).searchParams.get('code'));
  }
  return Response.json({ codes });
}

const defaultHandler = {
  async fetch(request, env) {
    const { pathname } = new URL(request.url);
    if (request.method === 'POST' && pathname === '/setup') return new Response('ready');
    if (request.method === 'POST' && pathname === '/setup/client') {
      const client = await env.OAUTH_PROVIDER.createClient({
        redirectUris: [REDIRECT_URI],
        clientName: 'bench orchestrator',
        tokenEndpointAuthMethod: 'client_secret_basic',
      });
      // The client_secret_basic header the benchmark's client sends on every token call.
      const authorization = `Basic ${btoa(`${client.clientId}:${client.clientSecret}`)}`;
      return Response.json({ client_id: client.clientId, authorization });
    }
    if (request.method === 'POST' && pathname === '/setup/codes') return setupCodes(request, env);
    return new Response('not found', { status: 404 });
  },
};

export default new OAuthProvider({
  apiRoute: '/api/',
  apiHandler: {
    fetch: (request, env, ctx) => Response.json({ props: ctx.props }),
  },
  defaultHandler,
  authorizeEndpoint: '/authorize',
  tokenEndpoint: '/oauth/token',
  scopesSupported: SCOPES,
  resourceMetadata: { resource: 'http://localhost/api/' },
});
