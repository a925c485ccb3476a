// The image of a multipart/form-data body: the first part that carries a file (or is named
// image/file). The body is already bounded by --max-body, so it is parsed from one buffer.
import { BgrmError } from '../errors';

export function boundaryOf(contentType: string): string {
  const m = /boundary=(?:"([^"]{1,70})"|([^;\s]{1,70}))/i.exec(contentType);
  if (!m) throw new BgrmError('ERR_BAD_REQUEST', 'multipart/form-data without a boundary');
  return m[1] ?? m[2];
}

export function imageFromMultipart(body: Buffer, contentType: string): Buffer {
  const delimiter = Buffer.from(`--${boundaryOf(contentType)}`);
  let pos = body.indexOf(delimiter);
  while (pos >= 0) {
    const headerStart = pos + delimiter.length;
    if (body.subarray(headerStart, headerStart + 2).toString() === '--') break; // closing delimiter
    const headerEnd = body.indexOf('\r\n\r\n', headerStart);
    if (headerEnd < 0) break;
    const headers = body.subarray(headerStart, headerEnd).toString('latin1');
    const next = body.indexOf(Buffer.concat([Buffer.from('\r\n'), delimiter]), headerEnd + 4);
    if (next < 0) break;
    const disposition = /content-disposition:([^\r\n]*)/i.exec(headers)?.[1] ?? '';
    const name = /\bname="([^"]*)"/i.exec(disposition)?.[1];
    if (/\bfilename="/i.test(disposition) || name === 'image' || name === 'file') return body.subarray(headerEnd + 4, next);
    pos = next + 2;
  }
  throw new BgrmError('ERR_BAD_REQUEST', 'the multipart body has no file part (send the image as a field named "image" or "file")');
}
