/**
 * The region a known cloud hostname names, so that an endpoint, a store or a KMS key whose URL
 * points at one region while its `region` label says another is refused: the label is what the
 * residency policy decides on, the URL is where the bytes actually go.
 *
 * Only hostnames of the three providers' public (and VPC / internal) forms are read. Anything
 * else, a loopback emulator, a private DNS name, an IP address, names no region and passes:
 * the label is then the only statement there is.
 */
import { TandemError } from '../errors/index.js';

/** AWS regions: `eu-central-1`, `us-gov-west-1`, `cn-north-1`, `ap-southeast-4`. */
const AWS_REGION = /^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d+$/;
/** Google Cloud regions: `europe-west3`, `us-central1`, `northamerica-northeast1`. */
const GCP_REGION = /^[a-z]+-[a-z]+\d+$/;
/** Alibaba Cloud regions: `cn-shanghai`, `ap-southeast-1`, `cn-shanghai-finance-1`, `cn-hongkong`. */
const ALIBABA_REGION = /^(cn|ap|eu|us|me|na|rus|sa)-[a-z]+(-\d+)?(-finance-\d+)?$/;

export interface HostRegion {
  provider: 'aws' | 'gcp' | 'alibaba';
  region: string;
}

function hostOf(url: string): string | undefined {
  try {
    return new URL(url.includes('://') ? url : `https://${url}`).hostname.toLowerCase();
  } catch {
    return undefined;
  }
}

function awsRegion(labels: string[]): string | undefined {
  // The region is the label just before `amazonaws.com` (or before `vpce.amazonaws.com`):
  // `runtime.sagemaker.eu-central-1`, `bucket.s3.dualstack.eu-west-1`, `kms-fips.us-east-1`,
  // PrivateLink `vpce-….runtime.sagemaker.eu-west-1.vpce`, and the legacy dashed S3 forms
  // `s3-eu-west-1`, `bucket.s3-website-us-east-1`. Only that label is read: a bucket's own name
  // further left may look like a region (`eu-west-1.s3.amazonaws.com` names none).
  const last = labels.at(-1) === 'vpce' ? labels.at(-2) : labels.at(-1);
  if (last === undefined) return undefined;
  const bare = last.replace(/^s3-(?:website-)?/, '');
  return AWS_REGION.test(bare) ? bare : undefined;
}

function gcpRegion(labels: string[]): string | undefined {
  // `europe-west4-aiplatform.googleapis.com`, `europe-west4-prediction-aiplatform.googleapis.com`,
  // Private Service Connect `europe-west4-aiplatform-pscep1.p.googleapis.com`,
  // regional endpoints `storage.europe-west3.rep.googleapis.com`, `cloudkms.europe-west3.rep.googleapis.com`.
  const first = labels[0] ?? '';
  const dashed = /^([a-z]+-[a-z]+\d+)-[a-z][a-z0-9-]*$/.exec(first);
  if (dashed && GCP_REGION.test(dashed[1]!)) return dashed[1];
  const rep = labels.indexOf('rep');
  if (rep > 0 && GCP_REGION.test(labels[rep - 1]!)) return labels[rep - 1];
  return undefined;
}

function vertexDedicatedRegion(labels: string[]): string | undefined {
  // A Vertex AI dedicated endpoint: `<endpoint id>.<region>-<uid>.prediction.vertexai.goog`.
  if (labels.length !== 3 || labels[2] !== 'prediction') return undefined;
  return /^([a-z]+-[a-z]+\d+)-[a-z0-9]+$/.exec(labels[1]!)?.[1];
}

function alibabaRegion(labels: string[]): string | undefined {
  // The label just before `aliyuncs.com`, or before `pai-eas.aliyuncs.com`: PAI-EAS
  // `123.cn-shanghai.pai-eas` and its VPC form `123.vpc.cn-shanghai.pai-eas`, KMS and STS
  // `kms.cn-shanghai` / `kms-vpc.cn-shanghai` / `sts-vpc.cn-shanghai`, OSS
  // `bucket.oss-cn-shanghai` / `oss-cn-shanghai-internal`. Only that label is read, as for AWS.
  const last = labels.at(-1) === 'pai-eas' ? labels.at(-2) : labels.at(-1);
  if (last === undefined) return undefined;
  const bare = last.startsWith('oss-') ? last.slice(4).replace(/-internal$/, '') : last;
  return ALIBABA_REGION.test(bare) ? bare : undefined;
}

/** The provider and region a known hostname names; undefined for any other host (or an unparsable URL). */
export function regionOfUrl(url: string): HostRegion | undefined {
  const host = hostOf(url);
  if (host === undefined) return undefined;
  const labels = host.split('.');
  let region: string | undefined;
  if (host.endsWith('.amazonaws.com') || host.endsWith('.amazonaws.com.cn')) {
    region = awsRegion(labels.slice(0, host.endsWith('.cn') ? -3 : -2));
    return region === undefined ? undefined : { provider: 'aws', region };
  }
  if (host.endsWith('.googleapis.com')) {
    region = gcpRegion(labels.slice(0, -2));
    return region === undefined ? undefined : { provider: 'gcp', region };
  }
  if (host.endsWith('.vertexai.goog')) {
    region = vertexDedicatedRegion(labels.slice(0, -2));
    return region === undefined ? undefined : { provider: 'gcp', region };
  }
  if (host.endsWith('.aliyuncs.com')) {
    region = alibabaRegion(labels.slice(0, -2));
    return region === undefined ? undefined : { provider: 'alibaba', region };
  }
  return undefined;
}

/**
 * Why `url` contradicts `region`, or undefined when it does not (an unknown host never does).
 * `what` names the thing in the message, e.g. `endpoint "eu-sm"`.
 */
export function regionLabelConflict(what: string, url: string | undefined, region: string): string | undefined {
  if (url === undefined) return undefined;
  const named = regionOfUrl(url);
  if (named === undefined || named.region === region) return undefined;
  return `${what} is labelled ${region} but its URL ${hostOf(url) ?? url} is in ${named.region}`;
}

/** The refusal of an endpoint, store or key whose URL names another region than its label. Code `RESIDENCY_REGION_LABEL`. */
export class RegionLabelError extends TandemError {
  constructor(message: string, details: { name: string; url: string; label: string; urlRegion: string }) {
    super('RESIDENCY_REGION_LABEL', message, { details });
  }
}

/** Rejects (throws) with {@link RegionLabelError} when `url` contradicts `region`; for config loaders. */
export function assertRegionLabel(what: string, name: string, url: string | undefined, region: string): void {
  const conflict = regionLabelConflict(what, url, region);
  if (conflict !== undefined) throw new RegionLabelError(conflict, { name, url: url!, label: region, urlRegion: regionOfUrl(url!)!.region });
}
