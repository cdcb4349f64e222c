// The subset of ali-oss 6.x that the OSS store uses (the package ships no type declarations).
declare module 'ali-oss' {
  interface OssOptions {
    region?: string;
    endpoint?: string;
    bucket?: string;
    accessKeyId: string;
    accessKeySecret: string;
    stsToken?: string;
    secure?: boolean;
    sldEnable?: boolean;
    timeout?: number | string;
    retryMax?: number;
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
  }
  export default OSS;
}
