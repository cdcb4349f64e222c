/**
 * The demo's residency policy: one device serving three data classes. EU personal data may
 * only be processed and stored in the EU, Chinese personal data only in China (PIPL), and
 * unrestricted data anywhere. Results go to emulated cloud stores (demo/emulators): S3 in
 * Frankfurt, OSS in Shanghai and GCS in Iowa.
 */

export const DEMO_CLASSES = ['eu-personal', 'cn-personal', 'unrestricted'] as const;

/** Preferred store per class (each is the only allowed one for the personal classes). */
export const DEMO_STORE_PREFERENCE = ['gcs-us', 's3-eu', 'oss-cn'];

/** Where each store's emulator listens. */
export interface DemoStoreUrls {
  s3: string;
  oss: string;
  gcs: string;
}

export const DEMO_BUCKETS = { s3: 'tandem-demo-eu', oss: 'tandem-demo-cn', gcs: 'tandem-demo-us' } as const;

export function demoPolicyYaml(urls: DemoStoreUrls): string {
  return `# Tandem demo residency policy
version: 1
description: One camera, three data classes (GDPR, PIPL, unrestricted)
classes:
  eu-personal:
    description: Personal data from EU subjects (GDPR)
    process:
      - { provider: aws, regions: ["eu-*"] }
      - { provider: gcp, regions: ["europe-*"] }
    store:
      - { provider: aws, regions: ["eu-*"] }
  cn-personal:
    description: Personal information collected in China (PIPL)
    process:
      - { provider: alibaba, regions: ["cn-*"] }
    store:
      - { provider: alibaba, regions: ["cn-*"] }
  unrestricted:
    process:
      - { provider: "*", regions: ["*"] }
    store:
      - { provider: "*", regions: ["*"] }
endpoints:
  sagemaker-frankfurt: { provider: aws, region: eu-central-1, service: sagemaker }
  eas-shanghai: { provider: alibaba, region: cn-shanghai, service: pai-eas }
  vertex-iowa: { provider: gcp, region: us-central1, service: vertex }
stores:
  s3-eu: { type: s3, region: eu-central-1, bucket: ${DEMO_BUCKETS.s3}, endpoint: "${urls.s3}" }
  oss-cn: { type: oss, region: cn-shanghai, bucket: ${DEMO_BUCKETS.oss}, endpoint: "${urls.oss}", pathStyle: true }
  gcs-us: { type: gcs, region: us-central1, bucket: ${DEMO_BUCKETS.gcs}, apiEndpoint: "${urls.gcs}", projectId: tandem-demo }
`;
}
