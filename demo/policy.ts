/**
 * The demo's residency policy: one device serving three data classes. EU personal data may
 * only be processed and stored in the EU, Chinese personal data only in China (PIPL), and
 * unrestricted data anywhere. Stores are local folders, one per region, under the demo's
 * temporary directory.
 */
import { join } from 'node:path';

export const DEMO_CLASSES = ['eu-personal', 'cn-personal', 'unrestricted'] as const;

/** Preferred store per class (each is the only allowed one for the personal classes). */
export const DEMO_STORE_PREFERENCE = ['local-us', 'local-eu', 'local-cn'];

export function demoPolicyYaml(storeRoot: string): string {
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
      - { provider: local, regions: ["eu-*"] }
  cn-personal:
    description: Personal information collected in China (PIPL)
    process:
      - { provider: alibaba, regions: ["cn-*"] }
    store:
      - { provider: local, regions: ["cn-*"] }
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
  local-eu: { type: local, region: eu-central-1, root: ${JSON.stringify(join(storeRoot, 'eu-central-1'))} }
  local-cn: { type: local, region: cn-shanghai, root: ${JSON.stringify(join(storeRoot, 'cn-shanghai'))} }
  local-us: { type: local, region: us-east-1, root: ${JSON.stringify(join(storeRoot, 'us-east-1'))} }
`;
}
