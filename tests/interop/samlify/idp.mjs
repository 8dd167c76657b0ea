// An independent SAML 2.0 identity provider built with samlify, for pforte's interoperability test
// (tests/api/saml_interop.rs). Two commands:
//
//   node idp.mjs metadata DIR             prints the IdP's metadata (key and certificate in DIR)
//   node idp.mjs respond DIR URL VARIANT  reads pforte's HTTP-Redirect AuthnRequest at URL (samlify
//                                         checks its signature against DIR/sp.xml, pforte's metadata)
//                                         and prints {"response", "relayState", "request"} as JSON:
//                                         an honest Response, or the forged VARIANT.
//   node idp.mjs logout DIR URL           reads pforte's HTTP-Redirect LogoutRequest at URL (signature
//                                         checked against DIR/sp.xml) and prints {"url", "nameID",
//                                         "sessionIndex"}: url is samlify's signed LogoutResponse to
//                                         pforte's SingleLogoutService.
//
// The honest Response is what BundID sends: the assertion signed, encrypted to pforte's certificate
// (AES-128-GCM, RSA-OAEP), the Response signed. Forged variants are made by the same library (other
// values in its template, another key) or by editing its output the way an attacker would.
import { readFileSync } from 'node:fs';
import samlify from 'samlify';

// pforte checks every XML it receives itself; samlify's optional XSD check needs Java.
samlify.setSchemaValidator({ validate: () => Promise.resolve('skipped') });

const ENTITY_ID = 'https://samlify.test/idp';
const BPK2 = 'urn:oid:1.3.6.1.4.1.25484.494450.3';
const [command, dir, url, variant = 'honest'] = process.argv.slice(2);

function identityProvider(keyFile, certFile, encrypt = true) {
  return samlify.IdentityProvider({
    entityID: ENTITY_ID,
    privateKey: readFileSync(`${dir}/${keyFile}`, 'utf8'),
    signingCert: readFileSync(`${dir}/${certFile}`, 'utf8'),
    wantAuthnRequestsSigned: true,
    wantLogoutRequestSigned: true,
    requestSignatureAlgorithm: 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',
    isAssertionEncrypted: encrypt,
    dataEncryptionAlgorithm: 'http://www.w3.org/2009/xmlenc11#aes128-gcm',
    keyEncryptionAlgorithm: 'http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p',
    singleSignOnService: [
      { Binding: 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect', Location: 'https://samlify.test/sso' },
    ],
    singleLogoutService: [
      { Binding: 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect', Location: 'https://samlify.test/slo' },
    ],
  });
}

function attribute(name, value) {
  return `<saml:Attribute Name="${name}" NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:uri"><saml:AttributeValue xsi:type="xs:string">${value}</saml:AttributeValue></saml:Attribute>`;
}

/// The values samlify's login response template is filled with; a forged variant changes some.
function values(sp, request, changes) {
  const now = new Date();
  const later = new Date(now.getTime() + 5 * 60 * 1000).toISOString();
  const acs = sp.entityMeta.getAssertionConsumerService('post');
  const base = {
    ID: `_r${crypto.randomUUID().replaceAll('-', '')}`,
    AssertionID: `_a${crypto.randomUUID().replaceAll('-', '')}`,
    Destination: acs,
    Audience: sp.entityMeta.getEntityID(),
    EntityID: sp.entityMeta.getEntityID(),
    SubjectRecipient: acs,
    Issuer: ENTITY_ID,
    IssueInstant: now.toISOString(),
    StatusCode: 'urn:oasis:names:tc:SAML:2.0:status:Success',
    ConditionsNotBefore: now.toISOString(),
    ConditionsNotOnOrAfter: later,
    SubjectConfirmationDataNotOnOrAfter: later,
    NameIDFormat: 'urn:oasis:names:tc:SAML:2.0:nameid-format:transient',
    NameID: 'transient-samlify',
    InResponseTo: request.extract.request.id,
    // Elements, put into the template as they are (samlify escapes every tag value it fills in).
    AuthnStatement: `<saml:AuthnStatement AuthnInstant="${now.toISOString()}"><saml:AuthnContext><saml:AuthnContextClassRef>STORK-QAA-Level-4</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>`,
    AttributeStatement: `<saml:AttributeStatement>${attribute(BPK2, 'bpk2-samlify-person')}${attribute('urn:oid:2.5.4.42', 'Max')}${attribute('urn:oid:2.5.4.4', 'Mustermann')}</saml:AttributeStatement>`,
  };
  return { ...base, ...changes };
}

const FORGED_VALUES = {
  'other-request': { InResponseTo: '_a-request-pforte-never-sent' },
  'other-destination': { Destination: 'https://other-sp.example/acs' },
  'other-recipient': { SubjectRecipient: 'https://other-sp.example/acs' },
  'other-audience': { Audience: 'https://other-sp.example' },
  'other-issuer': { Issuer: 'https://other-idp.example' },
  expired: {
    ConditionsNotOnOrAfter: new Date(Date.now() - 10 * 60 * 1000).toISOString(),
    SubjectConfirmationDataNotOnOrAfter: new Date(Date.now() - 10 * 60 * 1000).toISOString(),
  },
};

async function respond() {
  const sp = samlify.ServiceProvider({ metadata: readFileSync(`${dir}/sp.xml`, 'utf8'), wantMessageSigned: true });
  const parsed = new URL(url);
  const raw = parsed.search.slice(1);
  const octetString = raw.slice(0, raw.indexOf('&Signature='));
  const query = Object.fromEntries(parsed.searchParams);
  // samlify checks pforte's signature over the query with the signing certificate of pforte's metadata.
  const request = await identityProvider('idp.key', 'idp.crt').parseLoginRequest(sp, 'redirect', { query, octetString });

  const plain = variant === 'unsigned' || variant === 'second-assertion' || variant === 'comment';
  const idp = variant === 'other-key'
    ? identityProvider('forger.key', 'forger.crt')
    : identityProvider('idp.key', 'idp.crt', !plain);
  const filled = values(sp, request, FORGED_VALUES[variant] ?? {});
  if (variant === 'comment') {
    filled.AttributeStatement = filled.AttributeStatement.replace('bpk2-samlify-person', 'bpk2-samlify<!---->-person');
  }
  const replace = (template) => {
    const { AuthnStatement, AttributeStatement, ...text } = filled;
    const withElements = template.replace('{AuthnStatement}', AuthnStatement).replace('{AttributeStatement}', AttributeStatement);
    return { id: filled.ID, context: samlify.SamlLib.replaceTagsByValue(withElements, text) };
  };
  const { context } = await idp.createLoginResponse(sp, request, 'post', {}, {
    customTagReplacement: replace,
    encryptThenSign: true,
  });
  let xml = Buffer.from(context, 'base64').toString('utf8');
  if (variant === 'unsigned') {
    xml = xml.replace(/<ds:Signature[\s\S]*?<\/ds:Signature>/g, '');
  }
  if (variant === 'second-assertion') {
    // Signature wrapping: an unsigned assertion for someone else in front of the signed one.
    const signed = xml.match(/<saml:Assertion[\s\S]*<\/saml:Assertion>/)[0];
    const evil = signed
      .replace(/<ds:Signature[\s\S]*?<\/ds:Signature>/g, '')
      .replace('bpk2-samlify-person', 'bpk2-someone-else')
      .replace(/ID="[^"]*"/, 'ID="_evil"');
    xml = xml.replace(signed, evil + signed);
  }
  const response = Buffer.from(xml, 'utf8').toString('base64');
  const extract = request.extract.request;
  console.log(JSON.stringify({ response, relayState: query.RelayState, request: { id: extract.id, issuer: request.extract.issuer } }));
}

/// Single Logout: samlify checks pforte's signed LogoutRequest and answers with its signed LogoutResponse.
async function logout() {
  const sp = samlify.ServiceProvider({
    metadata: readFileSync(`${dir}/sp.xml`, 'utf8'),
    wantMessageSigned: true,
    wantLogoutResponseSigned: true,
  });
  const parsed = new URL(url);
  const raw = parsed.search.slice(1);
  const octetString = raw.slice(0, raw.indexOf('&Signature='));
  const query = Object.fromEntries(parsed.searchParams);
  const idp = identityProvider('idp.key', 'idp.crt');
  const request = await idp.parseLogoutRequest(sp, 'redirect', { query, octetString });
  const { context } = idp.createLogoutResponse(sp, request, 'redirect', query.RelayState ?? '');
  const extract = request.extract;
  console.log(JSON.stringify({ url: context, nameID: extract.nameID, sessionIndex: extract.sessionIndex }));
}

if (command === 'metadata') {
  process.stdout.write(identityProvider('idp.key', 'idp.crt').getMetadata());
} else if (command === 'respond') {
  await respond();
} else if (command === 'logout') {
  await logout();
} else {
  console.error('usage: node idp.mjs metadata DIR | respond DIR URL [VARIANT] | logout DIR URL');
  process.exit(2);
}
