// The subset of ali-oss 6.x that the OSS store uses (the package ships no type declarations).
declare module 'ali-oss' {
  interface OssOptions {
    region?: string;
    endpoint?: string;
    bucket?: string;
    accessKeyId: string;
    accessKeySecret: string;
    stsToken?: string;
    /** Asked for fresh STS keys before a request once `refreshSTSTokenInterval` ms have passed since the last ask. */
    refreshSTSToken?: () => Promise<{ accessKeyId: string; accessKeySecret: string; stsToken: string }>;
    refreshSTSTokenInterval?: number;
    secure?: boolean;
    sldEnable?: boolean;
    timeout?: number | string;
    retryMax?: number;
    /** urllib's agents, for http:// and https:// endpoints. */
    agent?: import('node:http').Agent;
    httpsAgent?: import('node:http').Agent;
  }
  interface OssRequestOptions {
    headers?: Record<string, string>;
    meta?: Record<string, string>;
    mime?: string;
    timeout?: number;
  }
  interface OssResponse {
    status: number;
    headers: Record<string, string>;
  }
  class OSS {
    constructor(options: OssOptions);
    put(name: string, file: Buffer, options?: OssRequestOptions): Promise<{ name: string; res: OssResponse }>;
    get(name: string, options?: OssRequestOptions): Promise<{ content: Buffer; res: OssResponse }>;
    head(name: string, options?: OssRequestOptions): Promise<{ status: number; meta: Record<string, string> | null; res: OssResponse }>;
    listV2(query: Record<string, string>, options?: OssRequestOptions): Promise<{ objects?: Array<{ name: string; size: number }>; isTruncated: boolean; nextContinuationToken: string | null; res: OssResponse }>;
    getStream(name: string, options?: OssRequestOptions): Promise<{ stream: NodeJS.ReadableStream & { destroy(error?: Error): void }; res: OssResponse }>;
  }
  export default OSS;
}
