import { readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { badInput } from '../errors.ts';
import { validateKey } from './keys.ts';
import type { S3StorageOptions, SettingNames } from './s3-options.ts';

// Where S3 settings come from: the standard AWS variables, or a JSON file named by an
// argument or WPBACKUP_S3_CONFIG (file settings then replace the variables entirely, so
// there is one place to look). Errors name the variable or field to fix, never a value
// that could be secret.

export interface S3Destination {
  bucket: string;
  /** '' or a prefix ending in '/'. */
  prefix: string;
}


export type S3Settings = Omit<S3StorageOptions, 'bucket' | 'prefix'> & { names: SettingNames };

const ENV_NAMES: SettingNames = {
  endpoint: 'AWS_ENDPOINT_URL',
  region: 'AWS_REGION',
  accessKeyId: 'AWS_ACCESS_KEY_ID',
  secretAccessKey: 'AWS_SECRET_ACCESS_KEY',
  sessionToken: 'AWS_SESSION_TOKEN',
  bucket: 'the bucket in the s3://bucket/prefix destination',
};
const FILE_FIELDS = ['endpoint', 'region', 'accessKeyId', 'secretAccessKey', 'sessionToken', 'pathStyle'];
const DEST_HINT = 'Use s3://bucket or s3://bucket/prefix';

/** Parses s3://bucket[/prefix]. */
export function parseS3Destination(dest: string): S3Destination {
  const match = /^s3:\/\/([^/]*)(?:\/(.*))?$/i.exec(dest);
  if (!match) throw badInput(`Destination "${dest}" is not an s3:// URL`, DEST_HINT);
  const bucket = match[1] ?? '';
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket) || bucket.includes('..')) {
    throw badInput(`S3 bucket name "${bucket}" in "${dest}" is not valid`, 'Bucket names are 3-63 lower-case letters, digits, dots and hyphens');
  }
  const path = (match[2] ?? '').replace(/\/+$/, '');
  if (path === '') return { bucket, prefix: '' };
  try {
    validateKey(path);
  } catch (err) {
    throw badInput(`S3 prefix "${path}" in "${dest}" is not valid`, DEST_HINT, err);
  }
  return { bucket, prefix: `${path}/` };
}

/** Everything S3Storage needs for dest, from the file if one is named, else the environment. */
export function s3StorageOptions(dest: string, opts: { env?: NodeJS.ProcessEnv; configFile?: string } = {}): S3StorageOptions & { names: SettingNames } {
  const env = opts.env ?? process.env;
  const { bucket, prefix } = parseS3Destination(dest);
  const file = opts.configFile ?? nonEmpty(env.WPBACKUP_S3_CONFIG);
  const settings = file ? settingsFromFile(file, opts.configFile ? 'the S3 config file argument' : 'WPBACKUP_S3_CONFIG') : settingsFromEnv(env);
  return { ...settings, bucket, prefix };
}

export function settingsFromEnv(env: NodeJS.ProcessEnv): S3Settings {
  const endpointName = nonEmpty(env.AWS_ENDPOINT_URL_S3) ? 'AWS_ENDPOINT_URL_S3' : 'AWS_ENDPOINT_URL';
  const names = { ...ENV_NAMES, endpoint: endpointName, region: !nonEmpty(env.AWS_REGION) && nonEmpty(env.AWS_DEFAULT_REGION) ? 'AWS_DEFAULT_REGION' : 'AWS_REGION' };
  const endpoint = checkEndpoint(nonEmpty(env[endpointName]), endpointName);
  const accessKeyId = nonEmpty(env.AWS_ACCESS_KEY_ID);
  const secretAccessKey = nonEmpty(env.AWS_SECRET_ACCESS_KEY);
  if (!accessKeyId || !secretAccessKey) {
    const missing = [accessKeyId ? '' : 'AWS_ACCESS_KEY_ID', secretAccessKey ? '' : 'AWS_SECRET_ACCESS_KEY'].filter(Boolean).join(' and ');
    throw badInput(`No S3 credentials: ${missing} ${missing.includes(" and ") ? "are" : "is"} not set`, 'Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or name a JSON config file in WPBACKUP_S3_CONFIG');
  }
  const sessionToken = nonEmpty(env.AWS_SESSION_TOKEN);
  return {
    endpoint,
    region: nonEmpty(env.AWS_REGION) ?? nonEmpty(env.AWS_DEFAULT_REGION) ?? 'us-east-1',
    forcePathStyle: pathStyleFromEnv(env.WPBACKUP_S3_PATH_STYLE, endpoint !== undefined),
    credentials: { accessKeyId, secretAccessKey, ...(sessionToken ? { sessionToken } : {}) },
    names,
  };
}

/** Reads a JSON settings file that only its owner may read, since it holds the secret key. */
export function settingsFromFile(path: string, source: string): S3Settings {
  const file = resolve(path);
  const json = readPrivateJson(file, source);
  const names = fileNames(file);
  const str = (field: string): string | undefined => {
    const v = json[field];
    if (v === undefined || v === null || v === '') return undefined;
    if (typeof v !== 'string') throw badInput(`"${field}" in S3 config file ${file} must be a string`);
    return v.trim();
  };
  const endpoint = checkEndpoint(str('endpoint'), names.endpoint);
  const accessKeyId = str('accessKeyId');
  const secretAccessKey = str('secretAccessKey');
  if (!accessKeyId || !secretAccessKey) {
    throw badInput(`S3 config file ${file} lacks ${accessKeyId ? 'secretAccessKey' : 'accessKeyId'}`, 'Add accessKeyId and secretAccessKey to it');
  }
  const pathStyle = json.pathStyle;
  if (pathStyle !== undefined && typeof pathStyle !== 'boolean') throw badInput(`"pathStyle" in S3 config file ${file} must be true or false`);
  const sessionToken = str('sessionToken');
  return {
    endpoint,
    region: str('region') ?? 'us-east-1',
    forcePathStyle: pathStyle ?? endpoint !== undefined,
    credentials: { accessKeyId, secretAccessKey, ...(sessionToken ? { sessionToken } : {}) },
    names,
  };
}

function readPrivateJson(file: string, source: string): Record<string, unknown> {
  let text: string;
  try {
    const st = statSync(file);
    if ((st.mode & 0o077) !== 0) {
      const mode = (st.mode & 0o777).toString(8).padStart(4, '0');
      throw badInput(`S3 config file ${file} is open to group or others (mode ${mode}) and holds a secret key`, `Run: chmod 600 ${file}`);
    }
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === undefined) throw err;
    throw badInput(`Cannot read S3 config file ${file} (${(err as NodeJS.ErrnoException).code})`, `Fix the path in ${source}`, err);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    // JSON.parse quotes the text around the error, which may be the secret: keep only the position.
    const at = /position (\d+)/.exec(String((err as Error).message))?.[1];
    throw badInput(`S3 config file ${file} is not valid JSON${at ? ` (near character ${at})` : ''}`, 'Fix the file');
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw badInput(`S3 config file ${file} must hold a JSON object`);
  const unknown = Object.keys(json).filter((k) => !FILE_FIELDS.includes(k));
  if (unknown.length) throw badInput(`S3 config file ${file} has unknown fields: ${unknown.join(', ')}`, `Allowed: ${FILE_FIELDS.join(', ')}`);
  return json as Record<string, unknown>;
}

function fileNames(file: string): SettingNames {
  const f = (field: string): string => `"${field}" in ${file}`;
  return { endpoint: f('endpoint'), region: f('region'), accessKeyId: f('accessKeyId'), secretAccessKey: f('secretAccessKey'), sessionToken: f('sessionToken'), bucket: ENV_NAMES.bucket };
}

/** An http(s) URL without credentials, trailing slash removed. */
function checkEndpoint(value: string | undefined, name: string): string | undefined {
  if (value === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw badInput(`${name} is not a URL`, 'Use e.g. https://s3.example.com or http://127.0.0.1:9000');
  }
  if (url.username || url.password) throw badInput(`${name} must not contain a user name or password`, 'Put the credentials in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY');
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw badInput(`${name} must be an http:// or https:// URL, not ${url.protocol}`);
  if (url.search || url.hash) throw badInput(`${name} must not have a query or fragment`);
  return url.href.replace(/\/+$/, '');
}

function pathStyleFromEnv(value: string | undefined, customEndpoint: boolean): boolean {
  const v = nonEmpty(value)?.toLowerCase();
  if (v === undefined) return customEndpoint;
  if (['1', 'true', 'yes', 'on'].includes(v)) return true;
  if (['0', 'false', 'no', 'off'].includes(v)) return false;
  throw badInput(`WPBACKUP_S3_PATH_STYLE must be true or false, not "${value}"`);
}

function nonEmpty(value: string | undefined): string | undefined {
  const v = value?.trim();
  return v ? v : undefined;
}
