// The password policy (NIST 800-63B style): long enough, not the email, not one of the passwords every
// guessing list starts with. No composition rules (digits, symbols): they make passwords worse, not stronger.

import { MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH } from '../../api/formats.ts';

export { MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH };

export type PolicyResult = { ok: true } | { ok: false; message: string };

// Whole passwords (lowercase) of 12+ characters that top the leaked-password lists; shorter ones fail on length.
const COMMON = new Set([
  '123456789012', '1234567890123', '12345678901234', '123456123456', '123123123123', '098765432109', '987654321098',
  'password1234', 'password12345', 'passwordpassword', 'qwertyuiop12', 'qwertyuiop123', 'qwertyuiopasdf',
  'qwerty123456', 'qwertyqwerty', '1q2w3e4r5t6y', '1qaz2wsx3edc', 'qazwsxedcrfv', 'zaq12wsxcde3', 'asdfghjkl123',
  'abc123456789', 'abcdefghijkl', 'abcd12345678', 'trustno1trustno1', 'mypassword123', 'adminadmin123',
]);

// Words that stay weak with digits or symbols around them: "Password2024!", "123Welcome!!".
const COMMON_WORDS = new Set([
  'password', 'passw', 'qwerty', 'qwertyuiop', 'letmein', 'welcome', 'admin', 'administrator', 'iloveyou', 'changeme',
  'wordpress', 'wpbackup', 'backup', 'football', 'baseball', 'sunshine', 'princess', 'monkey', 'dragon', 'master',
  'superman', 'batman', 'starwars', 'shadow', 'secret', 'login', 'default', 'test',
]);

const fail = (message: string): PolicyResult => ({ ok: false, message });

/** Checks a new password; the message is for the user and never repeats the password. */
export function checkPasswordPolicy(password: string, email: string): PolicyResult {
  const normalized = password.normalize('NFKC');
  const length = [...normalized].length; // code points, so "é" or an emoji counts as one character
  if (length < MIN_PASSWORD_LENGTH) return fail(`Password must be at least ${MIN_PASSWORD_LENGTH} characters long`);
  if (length > MAX_PASSWORD_LENGTH) return fail(`Password must be at most ${MAX_PASSWORD_LENGTH} characters long`);

  const lower = normalized.toLowerCase();
  const mail = email.trim().toLowerCase();
  const at = mail.lastIndexOf('@');
  const localPart = at > 0 ? mail.slice(0, at) : mail;
  if (lower.trim() === mail || lower.trim() === localPart) {
    return fail('Password must not be your email address');
  }
  // The letters left after stripping digits and symbols off both ends; a short unit repeated ("abcabcabcabc").
  const core = lower.replace(/^[^\p{L}]+|[^\p{L}]+$/gu, '');
  if (COMMON.has(lower) || COMMON_WORDS.has(core) || /^(.{1,4})\1+$/u.test(lower)) {
    return fail('Password is too common or too easy to guess; choose a longer phrase or a generated password');
  }
  return { ok: true };
}
