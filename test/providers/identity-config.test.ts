// The `identity` blocks of edge.yaml: named under `identities` or given in place, on endpoints
// and on `stores.<kind>`; validated (one cloud each, the identity fits the endpoint kind or
// store type, no secret anywhere), with file paths relative to the config file.
import { describe, expect, it } from 'vitest';
import { EdgeConfigError, loadEdgeConfig, parseEdgeConfig } from '../../edge/config.js';
import { IdentitySchema } from '../../src/providers/index.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const head = `models:\n  - name: cls\n    path: cls.onnx\nhttp:\n  port: 0\n`;

function issues(text: string): { path: string; line?: number; message: string }[] {
  try {
    parseEdgeConfig(text, '/etc/tandem/edge.yaml');
  } catch (error) {
    expect(error).toBeInstanceOf(EdgeConfigError);
    return [...(error as EdgeConfigError).issues];
  }
  return [];
}

describe('edge.yaml identity blocks', () => {
  it('named identities are taken by endpoints and stores; file paths become absolute', () => {
    const { config } = parseEdgeConfig(`${head}identities:
  aws-edge:
    aws:
      roleArn: arn:aws:iam::123456789012:role/tandem-edge
      webIdentityTokenFile: tokens/aws.jwt
  gcp-edge:
    gcp:
      credentialConfigFile: wif.json
endpoints:
  - name: sm
    kind: sagemaker
    region: eu-central-1
    identity: aws-edge
  - name: vx
    kind: vertex
    region: europe-west4
    project: p
    target: e
    identity: gcp-edge
stores:
  s3:
    identity: aws-edge
  oss:
    identity:
      alibaba:
        roleArn: acs:ram::1234567890123456:role/tandem-edge
        oidcProviderArn: acs:ram::1234567890123456:oidc-provider/edge-fleet
        oidcTokenFile: /var/run/tokens/alibaba.jwt
`, '/etc/tandem/edge.yaml');
    expect(config.endpoints[0]?.identity).toEqual({ aws: { roleArn: 'arn:aws:iam::123456789012:role/tandem-edge', webIdentityTokenFile: '/etc/tandem/tokens/aws.jwt' } });
    expect(config.endpoints[1]?.identity).toEqual({ gcp: { credentialConfigFile: '/etc/tandem/wif.json' } });
    expect(config.stores['s3']?.['identity']).toEqual({ aws: { roleArn: 'arn:aws:iam::123456789012:role/tandem-edge', webIdentityTokenFile: '/etc/tandem/tokens/aws.jwt' } });
    expect(config.stores['oss']?.['identity']).toMatchObject({ alibaba: { oidcTokenFile: '/var/run/tokens/alibaba.jwt' } });
  });

  it('an unknown name is reported at its line, with the names there are', () => {
    const found = issues(`${head}identities:\n  aws-edge:\n    aws:\n      roleArn: arn:aws:iam::123456789012:role/x\n      webIdentityTokenFile: t\nendpoints:\n  - name: sm\n    kind: sagemaker\n    region: eu-central-1\n    identity: aws-egde\n`);
    expect(found).toEqual([{ path: 'endpoints[0].identity', line: 15, message: 'no identity named "aws-egde" under identities (there are: aws-edge)' }]);
  });

  it('refuses secrets by name, wherever they are, and says why', () => {
    const found = issues(`${head}endpoints:\n  - name: sm\n    kind: sagemaker\n    region: eu-central-1\n    identity:\n      aws:\n        roleArn: arn:aws:iam::123456789012:role/x\n        webIdentityTokenFile: t\n        secretAccessKey: abc\n`);
    expect(found.some((i) => i.path === 'endpoints[0].identity.aws.secretAccessKey' && /never a secret/.test(i.message))).toBe(true);
    for (const key of ['accessKeySecret', 'sessionToken', 'private_key', 'webIdentityToken', 'password']) {
      expect(IdentitySchema.safeParse({ alibaba: { [key]: 'x' } }).success).toBe(false);
    }
    // Where a token is, not the token: accepted.
    expect(IdentitySchema.safeParse({ aws: { roleArn: 'arn:aws:iam::123456789012:role/x', webIdentityTokenFile: '/t' } }).success).toBe(true);
  });

  it('refuses an identity that does not fit: another cloud, pai-eas, oip, a token beside it, two clouds in one block', () => {
    const aws = '      aws:\n        roleArn: arn:aws:iam::123456789012:role/x\n        webIdentityTokenFile: t\n';
    expect(issues(`${head}endpoints:\n  - name: vx\n    kind: vertex\n    region: r\n    project: p\n    target: e\n    identity:\n${aws}`)).toEqual([expect.objectContaining({ path: 'endpoints[0].identity', message: 'vertex takes a gcp identity, not aws' })]);
    expect(issues(`${head}endpoints:\n  - name: eas\n    kind: pai-eas\n    region: cn-shanghai\n    url: https://x.example.com\n    identity:\n      alibaba:\n        roleArn: acs:ram::1:role/x\n        oidcProviderArn: acs:ram::1:oidc-provider/y\n        oidcTokenFile: t\n`)[0]?.message).toMatch(/pai-eas takes no identity: its request signature carries no STS security token/);
    expect(issues(`${head}endpoints:\n  - name: o\n    kind: oip\n    region: r\n    url: https://x.example.com\n    identity:\n${aws}`)[0]?.message).toBe('oip takes no identity');
    expect(issues(`${head}endpoints:\n  - name: sm\n    kind: sagemaker\n    region: r\n    token: t\n    identity:\n${aws}`)[0]?.message).toMatch(/exclude each other/);
    expect(issues(`${head}stores:\n  gcs:\n    identity:\n${aws}`)).toEqual([expect.objectContaining({ path: 'stores.gcs.identity', message: 'gcs takes a gcp identity, not aws' })]);
    expect(IdentitySchema.safeParse({ aws: { roleArn: 'arn:aws:iam::123456789012:role/x', webIdentityTokenFile: '/t' }, gcp: { credentialConfigFile: '/c' } }).success).toBe(false);
    expect(IdentitySchema.safeParse({ aws: { roleArn: 'not-an-arn', webIdentityTokenFile: '/t' } }).success).toBe(false);
  });

  it('a federated OSS store takes no keys from the environment', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tandem-id-cfg-'));
    try {
      const file = join(dir, 'edge.yaml');
      writeFileSync(file, `${head}stores:\n  oss:\n    identity:\n      alibaba:\n        roleArn: acs:ram::1:role/x\n        oidcProviderArn: acs:ram::1:oidc-provider/y\n        oidcTokenFile: t\n`);
      const env = { ALIBABA_CLOUD_ACCESS_KEY_ID: 'LTAI', ALIBABA_CLOUD_ACCESS_KEY_SECRET: 's' };
      expect((await loadEdgeConfig(file, env)).config.stores['oss']?.['credentials']).toBeUndefined();
      writeFileSync(file, `${head}stores:\n  oss:\n    pathStyle: true\n`);
      expect((await loadEdgeConfig(file, env)).config.stores['oss']?.['credentials']).toEqual({ accessKeyId: 'LTAI', accessKeySecret: 's' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
