import { createHmac } from 'node:crypto';
import nodemailer from 'nodemailer';
import type { EmailConfig } from '../db/alerts.ts';
import type { Attempt } from '../db/alert-deliveries.ts';

// The three ways an alert leaves the server. Each makes one attempt and says how it went; it
// never throws and never puts a secret (SMTP password, signing secret, ping URL) in what it
// returns, since attempts are stored and shown in the delivery log.

export const SIGNATURE_HEADER = 'x-wpbackup-signature';
const TIMEOUT_MS = 10_000;
const MAX_ERROR = 500;

/** "sha256=<hex>": HMAC-SHA256 of the exact body bytes under the channel's secret. */
export function signBody(secret: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

function errorText(err: unknown): string {
  const e = err as { message?: string; cause?: { message?: string } };
  const msg = e.cause?.message ? `${e.message ?? String(err)}: ${e.cause.message}` : (e.message ?? String(err));
  return msg.slice(0, MAX_ERROR);
}

export interface Mail {
  subject: string;
  text: string;
  to: string[];
}

export async function sendEmail(config: EmailConfig, password: string | null, mail: Mail, now: () => number): Promise<Attempt> {
  const transport = nodemailer.createTransport({
    host: config.host, port: config.port, secure: config.tls === 'tls', requireTLS: config.tls === 'starttls', ignoreTLS: config.tls === 'none',
    auth: config.user ? { user: config.user, pass: password ?? '' } : undefined,
    connectionTimeout: TIMEOUT_MS, greetingTimeout: TIMEOUT_MS, socketTimeout: TIMEOUT_MS * 2, logger: false, debug: false,
  });
  try {
    await transport.sendMail({ from: config.from, to: mail.to, subject: mail.subject, text: mail.text });
    return { at: now(), status: null, error: null };
  } catch (err) {
    return { at: now(), status: null, error: `SMTP ${config.host}:${config.port}: ${errorText(err)}` };
  } finally {
    transport.close();
  }
}

/** POSTs body; any 2xx is delivered. Redirects are not followed (a 3xx is a failure). */
export async function sendWebhook(url: string, secret: string, body: string, headers: Record<string, string>, now: () => number): Promise<Attempt> {
  return httpAttempt(url, { method: 'POST', body, headers: { 'content-type': 'application/json', 'user-agent': 'wpbackup-alerts', ...headers, [SIGNATURE_HEADER]: signBody(secret, body) } }, now, 'the webhook');
}

/** A healthchecks.io-style ping: URL/start, URL, URL/fail; a failure's text goes in the body. */
export async function sendPing(url: string, suffix: '' | '/start' | '/fail', body: string, now: () => number): Promise<Attempt> {
  const target = url.replace(/\/+$/, '') + suffix;
  return httpAttempt(target, { method: 'POST', body, headers: { 'content-type': 'text/plain; charset=utf-8', 'user-agent': 'wpbackup-alerts' } }, now, 'the ping URL');
}

/** Errors name what failed (the webhook, the ping URL) but never the URL itself, which may be a secret. */
async function httpAttempt(url: string, init: RequestInit, now: () => number, what: string): Promise<Attempt> {
  try {
    const res = await fetch(url, { ...init, redirect: 'manual', signal: AbortSignal.timeout(TIMEOUT_MS) });
    await res.body?.cancel().catch(() => undefined);
    if (res.status >= 200 && res.status < 300) return { at: now(), status: res.status, error: null };
    return { at: now(), status: res.status, error: `${what} answered HTTP ${res.status}` };
  } catch (err) {
    return { at: now(), status: null, error: `${what} could not be reached: ${errorText(err).replace(url, '<url>')}` };
  }
}
