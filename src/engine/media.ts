import { extname } from 'node:path';

// File types whose content is compressed already, so zstd would spend its CPU for well under
// 1% of their size. Decided by name alone: the same file must get the same answer in both
// passes over wp-content, whatever happens to its size in between. A misnamed file only
// costs some size, never correctness.

const COMPRESSED = new Set([
  // images
  'jpg', 'jpeg', 'jpe', 'jfif', 'png', 'gif', 'webp', 'avif', 'heic', 'heif', 'jxl',
  // video and audio
  'mp4', 'm4v', 'mov', 'webm', 'mkv', 'avi', 'wmv', 'flv', 'mpg', 'mpeg', 'ogv', '3gp',
  'mp3', 'm4a', 'aac', 'ogg', 'oga', 'opus', 'flac', 'wma',
  // archives and containers
  'zip', 'gz', 'tgz', 'bz2', 'xz', 'zst', '7z', 'rar', 'lz4', 'docx', 'xlsx', 'pptx', 'odt', 'ods', 'odp', 'epub',
  // web fonts
  'woff', 'woff2',
]);

export function isCompressedMedia(name: string): boolean {
  return COMPRESSED.has(extname(name).slice(1).toLowerCase());
}
