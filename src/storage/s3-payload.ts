import type { UploadPartCommand } from '@aws-sdk/client-s3';

// Whether a part's SigV4 signature covers its sha256. Hashing every byte once more costs
// about a core-second per 2 GB on the client and as much again on the server, and buys
// tamper protection for the body only where someone could tamper with it: on plain http
// across a network. Over https, TLS already protects it (aws-cli and minio-go skip payload
// signing there too); on the loopback interface only root on the same host could touch the
// bytes, and root can read the credentials anyway. The headers stay signed either way, and
// the uploader still hashes the whole object and checks its stored size.

const LOOPBACK = /^(localhost|127(\.\d{1,3}){3}|\[::1\])$/i;

/** True when parts may be sent with UNSIGNED-PAYLOAD: https (AWS itself) or loopback. */
export function unsignedPayloadOk(endpoint: string | undefined): boolean {
  if (!endpoint) return true;
  const url = new URL(endpoint);
  return url.protocol === 'https:' || LOOPBACK.test(url.hostname);
}

/** Has the signer take UNSIGNED-PAYLOAD instead of hashing the part (it uses a preset header). */
export function skipPayloadHash(cmd: UploadPartCommand): UploadPartCommand {
  cmd.middlewareStack.add(
    (next) => (args) => {
      const request = args.request as { headers?: Record<string, string> };
      if (request.headers) request.headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD';
      return next(args);
    },
    { step: 'build', name: 'wpbackupUnsignedPayload' },
  );
  return cmd;
}
