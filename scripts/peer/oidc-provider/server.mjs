// The peer of scripts/side-by-side.sh: oidc-provider with one client_credentials client and
// RFC 7662 introspection, on 127.0.0.1:PEER_PORT. Its store is the built-in development adapter
// (in memory, the last 1000 entries; no durability), which is what it warns about at start.
import Provider from 'oidc-provider';

const port = Number(process.env.PEER_PORT);
const secret = process.env.PEER_CLIENT_SECRET;
if (!Number.isInteger(port) || port <= 0 || !secret) {
  console.error('peer: set PEER_PORT (a port number) and PEER_CLIENT_SECRET');
  process.exit(2);
}

const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [{
    client_id: 'bench',
    client_secret: secret,
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    scope: 'api',
  }],
  scopes: ['api'],
  features: {
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    devInteractions: { enabled: false },
  },
});
provider.listen(port, '127.0.0.1');
