// The region-label check: a known provider hostname that names another region than the label
// is refused, at config load (policy stores and keys, edge endpoints) and before a send.
import { describe, expect, it } from 'vitest';
import { EdgeConfigSchema } from '../../edge/config.js';
import { evaluateSend } from '../../src/residency/gate.js';
import { parsePolicy } from '../../src/residency/policy.js';
import { assertRegionLabel, regionOfUrl } from '../../src/residency/region-label.js';

describe('regionOfUrl', () => {
  it.each([
    ['https://runtime.sagemaker.eu-central-1.amazonaws.com', 'aws', 'eu-central-1'],
    ['https://runtime.sagemaker.cn-north-1.amazonaws.com.cn/endpoints/x', 'aws', 'cn-north-1'],
    ['https://vpce-0abc.runtime.sagemaker.eu-west-1.vpce.amazonaws.com', 'aws', 'eu-west-1'],
    ['https://eu-west-1.s3.us-east-1.amazonaws.com', 'aws', 'us-east-1'],
    ['https://s3-eu-west-1.amazonaws.com', 'aws', 'eu-west-1'],
    ['https://kms.us-gov-west-1.amazonaws.com', 'aws', 'us-gov-west-1'],
    ['https://europe-west4-aiplatform.googleapis.com', 'gcp', 'europe-west4'],
    ['https://us-central1-prediction-aiplatform.googleapis.com', 'gcp', 'us-central1'],
    ['https://storage.europe-west3.rep.googleapis.com', 'gcp', 'europe-west3'],
    ['https://1234.cn-shanghai.pai-eas.aliyuncs.com/api/predict/svc', 'alibaba', 'cn-shanghai'],
    ['http://1234.vpc.cn-hangzhou.pai-eas.aliyuncs.com', 'alibaba', 'cn-hangzhou'],
    ['https://bucket.oss-cn-shanghai.aliyuncs.com', 'alibaba', 'cn-shanghai'],
    ['https://oss-ap-southeast-1-internal.aliyuncs.com', 'alibaba', 'ap-southeast-1'],
    ['https://kms-vpc.cn-beijing.aliyuncs.com', 'alibaba', 'cn-beijing'],
    // PrivateLink for S3 (an interface endpoint, a bucket under it), S3 website hosting.
    ['https://bucket.vpce-1a2b3c4d-5e6f.s3.eu-west-3.vpce.amazonaws.com', 'aws', 'eu-west-3'],
    ['http://results.s3-website-us-east-1.amazonaws.com', 'aws', 'us-east-1'],
    // Private Service Connect for Vertex AI, and a Vertex AI dedicated endpoint.
    ['https://europe-west4-aiplatform-pscep1.p.googleapis.com', 'gcp', 'europe-west4'],
    ['https://1234567890.us-central1-987654321.prediction.vertexai.goog', 'gcp', 'us-central1'],
    ['https://sts-vpc.cn-shanghai.aliyuncs.com', 'alibaba', 'cn-shanghai'],
  ])('%s is in %s/%s', (url, provider, region) => {
    expect(regionOfUrl(url)).toEqual({ provider, region });
  });

  it.each(['http://127.0.0.1:8080', 'http://localhost:9000', 'https://storage.googleapis.com', 'https://models.example.com', 'https://s3.amazonaws.com', 'not a url',
    // A bucket named like a region under a global endpoint: the name is not where the bytes go.
    'https://eu-west-1.s3.amazonaws.com', 'https://us-east-1.oss-accelerate.aliyuncs.com', 'https://sts.aliyuncs.com'])('%s names no region', (url) => {
    expect(regionOfUrl(url)).toBeUndefined();
  });
});

describe('the region-label check', () => {
  it('refuses a policy store whose endpoint is in another region, naming the path', () => {
    expect(() =>
      parsePolicy(`version: 1
classes: {}
stores:
  oss-sh: { type: oss, region: cn-shanghai, bucket: results, endpoint: "https://oss-cn-beijing.aliyuncs.com" }
`),
    ).toThrow(/:4:\d+ at \$\.stores\.oss-sh\.endpoint: store "oss-sh" is labelled cn-shanghai but its URL oss-cn-beijing\.aliyuncs\.com is in cn-beijing/);
    // The same with a loopback emulator passes: an unknown host names no region.
    expect(parsePolicy(`version: 1
classes: {}
stores:
  oss-sh: { type: oss, region: cn-shanghai, bucket: results, endpoint: "http://127.0.0.1:9000" }
`).stores['oss-sh']?.region).toBe('cn-shanghai');
  });

  it('refuses an edge endpoint whose URL contradicts its region at config load', () => {
    const parsed = EdgeConfigSchema.safeParse({ models: [{ name: 'm', path: 'm.onnx' }], endpoints: [{ name: 'eas', kind: 'pai-eas', region: 'cn-shanghai', url: 'https://1234.cn-hangzhou.pai-eas.aliyuncs.com' }] });
    expect(parsed.success).toBe(false);
    expect(parsed.error?.issues[0]).toMatchObject({ path: ['endpoints', 0, 'url'], message: expect.stringMatching(/labelled cn-shanghai but its URL .* is in cn-hangzhou/) });
    const consistent = EdgeConfigSchema.safeParse({ models: [{ name: 'm', path: 'm.onnx' }], endpoints: [{ name: 'eas', kind: 'pai-eas', region: 'cn-shanghai', url: 'https://1234.cn-shanghai.pai-eas.aliyuncs.com' }] });
    expect(consistent.error?.issues.filter((i) => i.path[0] === 'endpoints') ?? []).toEqual([]);
  });

  it('refuses a send to a candidate whose URL contradicts the policy\'s region, and lets an emulator through', () => {
    const policy = parsePolicy(`version: 1
classes:
  health: { process: [{ provider: aws, regions: [eu-central-1] }] }
endpoints:
  sm: { provider: aws, region: eu-central-1, service: sagemaker }
`);
    expect(evaluateSend(policy, 'health', undefined, { name: 'sm', region: 'eu-central-1', url: 'https://runtime.sagemaker.us-east-1.amazonaws.com' })).toEqual({
      allowed: false,
      why: 'endpoint "sm" is labelled eu-central-1 but its URL runtime.sagemaker.us-east-1.amazonaws.com is in us-east-1',
    });
    expect(evaluateSend(policy, 'health', undefined, { name: 'sm', region: 'eu-central-1', url: 'https://runtime.sagemaker.eu-central-1.amazonaws.com' }).allowed).toBe(true);
    expect(evaluateSend(policy, 'health', undefined, { name: 'sm', region: 'eu-central-1', url: 'http://127.0.0.1:8080' }).allowed).toBe(true);
  });

  it('reads private-endpoint forms too: a PAI-EAS VPC address and a SageMaker PrivateLink endpoint in another region are refused', () => {
    const parsed = EdgeConfigSchema.safeParse({ models: [{ name: 'm', path: 'm.onnx' }], endpoints: [{ name: 'eas', kind: 'pai-eas', region: 'cn-shanghai', url: 'http://1234.vpc.cn-beijing.pai-eas.aliyuncs.com' }] });
    expect(parsed.error?.issues[0]).toMatchObject({ path: ['endpoints', 0, 'url'], message: expect.stringMatching(/labelled cn-shanghai but its URL 1234\.vpc\.cn-beijing\.pai-eas\.aliyuncs\.com is in cn-beijing/) });
    const policy = parsePolicy(`version: 1
classes:
  health: { process: [{ provider: aws, regions: [eu-central-1] }] }
endpoints:
  sm: { provider: aws, region: eu-central-1, service: sagemaker }
`);
    expect(evaluateSend(policy, 'health', undefined, { name: 'sm', region: 'eu-central-1', url: 'https://vpce-0abc-1x2y.runtime.sagemaker.eu-west-1.vpce.amazonaws.com' })).toMatchObject({ allowed: false, why: expect.stringMatching(/is in eu-west-1/) });
    expect(evaluateSend(policy, 'health', undefined, { name: 'sm', region: 'eu-central-1', url: 'https://vpce-0abc-1x2y.runtime.sagemaker.eu-central-1.vpce.amazonaws.com' }).allowed).toBe(true);
  });

  it('refuses a GCS store on another region\'s regional endpoint and an S3 store on another region\'s PrivateLink', () => {
    expect(() => parsePolicy(`version: 1
classes: {}
stores:
  gcs-eu: { type: gcs, region: europe-west3, bucket: results, apiEndpoint: "https://storage.us-central1.rep.googleapis.com" }
`)).toThrow(/store "gcs-eu" is labelled europe-west3 but its URL storage\.us-central1\.rep\.googleapis\.com is in us-central1/);
    expect(() => parsePolicy(`version: 1
classes: {}
stores:
  s3-eu: { type: s3, region: eu-central-1, bucket: results, endpoint: "https://bucket.vpce-1a2b.s3.us-east-1.vpce.amazonaws.com" }
`)).toThrow(/store "s3-eu" is labelled eu-central-1 but its URL .* is in us-east-1/);
  });

  it('assertRegionLabel throws the typed error', () => {
    expect(() => assertRegionLabel('endpoint "v"', 'v', 'https://us-central1-aiplatform.googleapis.com', 'europe-west4')).toThrow(expect.objectContaining({ code: 'RESIDENCY_REGION_LABEL', details: expect.objectContaining({ urlRegion: 'us-central1' }) }));
  });
});
