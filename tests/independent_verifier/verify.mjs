// Verifies one Verifiable Credential with Digital Bazaar's stack (an implementation independent
// of the engine's): @digitalbazaar/vc + data-integrity + eddsa-rdfc-2022-cryptosuite, the issuer
// key resolved from its did:key by did-method-key. Contexts come from the engine's bundled
// copies (argv[2]: their folder; no network). The credential is read from standard input; the
// answer is one JSON line on standard output: {"verified": bool, "error": string|null}.
// A did:web issuer's DID document is fetched over the network (see didWeb below).
// Usage: node verify.mjs CONTEXTS_DIR [--did-web-http] < credential.json
import {readFileSync, readdirSync} from 'node:fs';
import {join} from 'node:path';
import * as vc from '@digitalbazaar/vc';
import {DataIntegrityProof} from '@digitalbazaar/data-integrity';
import {cryptosuite as eddsaRdfc2022CryptoSuite} from '@digitalbazaar/eddsa-rdfc-2022-cryptosuite';
import * as didKey from '@digitalbazaar/did-method-key';
import * as Ed25519Multikey from '@digitalbazaar/ed25519-multikey';
import jsigs from 'jsonld-signatures';

const URLS = {
  'credentials-v2.jsonld': 'https://www.w3.org/ns/credentials/v2',
  'ob-context-3.0.3.json': 'https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json',
  'ob-extensions.json': 'https://purl.imsglobal.org/spec/ob/v3p0/extensions.json',
  'data-integrity-v1.jsonld': 'https://w3id.org/security/data-integrity/v1',
};
const contexts = new Map();
for (const name of readdirSync(process.argv[2])) {
  if (URLS[name]) contexts.set(URLS[name], JSON.parse(readFileSync(join(process.argv[2], name))));
}
const didKeyDriver = didKey.driver();
didKeyDriver.use({multibaseMultikeyHeader: 'z6Mk', fromMultibase: Ed25519Multikey.from});

// did:web (argv[3] = "--did-web-http" in the tests, whose server has no TLS): the DID document
// fetched from https://HOST/.well-known/did.json; a verification method is its entry there.
const didWebScheme = process.argv[3] === '--did-web-http' ? 'http' : 'https';

async function didWeb(url) {
  const [did, fragment] = url.split('#');
  const host = decodeURIComponent(did.slice('did:web:'.length));
  if (host.includes('/') || host.includes(':') && !/^[^:]+:[0-9]+$/.test(host)) {
    throw new Error(`not a host did:web: ${did}`);
  }
  const answer = await fetch(`${didWebScheme}://${host}/.well-known/did.json`);
  if (!answer.ok) throw new Error(`${did}: its DID document answered ${answer.status}`);
  const document = await answer.json();
  if (document.id !== did) throw new Error(`the DID document of ${did} is ${document.id}`);
  if (fragment === undefined) return document;
  const method = (document.verificationMethod ?? []).find(m => m.id === url);
  if (!method) throw new Error(`${url} is not in the DID document`);
  return {'@context': 'https://w3id.org/security/multikey/v1', ...method};
}

async function documentLoader(url) {
  if (contexts.has(url)) return {contextUrl: null, documentUrl: url, document: contexts.get(url)};
  if (url.startsWith('did:key:')) {
    const document = await didKeyDriver.get({url});
    return {contextUrl: null, documentUrl: url, document};
  }
  if (url.startsWith('did:web:')) {
    return {contextUrl: null, documentUrl: url, document: await didWeb(url)};
  }
  throw new Error(`refused to load ${url} (offline)`);
}

const credential = JSON.parse(readFileSync(0, 'utf8'));
const suite = new DataIntegrityProof({cryptosuite: eddsaRdfc2022CryptoSuite});
try {
  const result = await vc.verifyCredential({
    credential, suite, documentLoader, checkStatus: async () => ({verified: true}),
    purpose: new jsigs.purposes.AssertionProofPurpose(),
  });
  const error = result.verified ? null : String(
    result.error?.errors?.[0]?.message ?? result.error?.message ?? 'not verified');
  process.stdout.write(JSON.stringify({verified: result.verified, error}) + '\n');
} catch (e) {
  process.stdout.write(JSON.stringify({verified: false, error: String(e.message ?? e)}) + '\n');
}
