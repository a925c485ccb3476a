// The OpenAPI 3.1 document of `bgrm serve`, served at /openapi.json.
const error = { $ref: '#/components/schemas/Error' };
const errorResponse = (description: string) => ({ description, content: { 'application/json': { schema: error } } });

export function openApiDocument(version: string): object {
  return {
    openapi: '3.1.0',
    info: {
      title: 'bgrm',
      version,
      description: 'Background removal with U-2-Net (ONNX Runtime in a native core), plus health, metrics and the pipeline dashboard.',
      license: { name: 'Apache-2.0' },
    },
    components: {
      securitySchemes: { token: { type: 'http', scheme: 'bearer', description: 'Needed on every route but /healthz when the server runs with --token (also accepted as ?token=)' } },
      schemas: {
        Error: {
          type: 'object',
          required: ['error'],
          properties: { error: { type: 'object', required: ['code', 'message'], properties: { code: { type: 'string', examples: ['ERR_DECODE'] }, message: { type: 'string' } } } },
        },
      },
    },
    security: [{ token: [] }],
    paths: {
      '/v1/remove': {
        post: {
          summary: 'Remove the background from one image',
          description:
            'The body is an image (JPEG, PNG, WebP, TIFF, BMP, GIF, HEIF/HEIC or AVIF, recognised by its content; EXIF orientation applied), raw or as the file part of a multipart/form-data form. Returns PNG, WebP or JPEG: the output-format parameter, else the Accept header (PNG when it takes anything). JPEG has no alpha: it needs background or format=mask (406 otherwise).',
          parameters: [
            { name: 'format', in: 'query', schema: { type: 'string', enum: ['rgba', 'mask'], default: 'rgba' }, description: 'rgba: the cut-out with alpha; mask: the 8-bit mask' },
            { name: 'background', in: 'query', schema: { type: 'string' }, description: "composite onto a colour instead of transparency: '#00ff00', 'fff', white, black, ..." },
            { name: 'model', in: 'query', schema: { type: 'string' }, description: 'an installed model name (GET /v1/models); default: the server\'s --model' },
            { name: 'output-format', in: 'query', schema: { type: 'string', enum: ['png', 'webp', 'jpeg'] }, description: 'the response image format; default: from Accept, else png' },
            { name: 'quality', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 100 }, description: 'WebP: lossy at this quality (default lossless); JPEG: its quality (default 90)' },
            { name: 'Accept', in: 'header', schema: { type: 'string', examples: ['image/webp'] }, description: 'image/png, image/webp or image/jpeg (q-values honoured)' },
          ],
          requestBody: {
            required: true,
            content: {
              'image/jpeg': { schema: { type: 'string', contentMediaType: 'image/jpeg' } },
              'image/png': { schema: { type: 'string', contentMediaType: 'image/png' } },
              'image/webp': { schema: { type: 'string', contentMediaType: 'image/webp' } },
              'image/tiff': { schema: { type: 'string', contentMediaType: 'image/tiff' } },
              'image/bmp': { schema: { type: 'string', contentMediaType: 'image/bmp' } },
              'image/gif': { schema: { type: 'string', contentMediaType: 'image/gif' } },
              'image/heic': { schema: { type: 'string', contentMediaType: 'image/heic' } },
              'image/avif': { schema: { type: 'string', contentMediaType: 'image/avif' } },
              'application/octet-stream': { schema: { type: 'string' } },
              'multipart/form-data': { schema: { type: 'object', properties: { image: { type: 'string', contentMediaType: 'application/octet-stream' } } } },
            },
          },
          responses: {
            200: {
              description: 'The image (Server-Timing gives the time per stage)',
              content: {
                'image/png': { schema: { type: 'string', contentMediaType: 'image/png' } },
                'image/webp': { schema: { type: 'string', contentMediaType: 'image/webp' } },
                'image/jpeg': { schema: { type: 'string', contentMediaType: 'image/jpeg' } },
              },
            },
            400: errorResponse('Not a valid image (corrupt, truncated), or a bad option'),
            401: errorResponse('Missing or wrong token'),
            406: errorResponse('Accept takes no format bgrm writes, or only JPEG for a transparent cut-out'),
            413: errorResponse('Body over --max-body, or image dimensions over the limit'),
            415: errorResponse('Not an image format bgrm reads (or an unsupported Content-Type)'),
            503: { ...errorResponse('The queue is full; retry after the number of seconds in Retry-After'), headers: { 'Retry-After': { schema: { type: 'integer' } } } },
          },
        },
      },
      '/v1/models': { get: { summary: 'Models known to this server and whether they are installed', responses: { 200: { description: 'JSON list' } } } },
      '/v1/state': { get: { summary: 'The pipeline as the dashboard sees it (workers, partitions, cameras, series), JSON', responses: { 200: { description: 'JSON' } } } },
      '/v1/events': { get: { summary: 'The same state, pushed every second (Server-Sent Events)', responses: { 200: { description: 'text/event-stream' } } } },
      '/v1/preview/{camera}': {
        get: {
          summary: 'The latest processed frame of a camera (PNG cut-out), read from the output topic with read_committed',
          parameters: [{ name: 'camera', in: 'path', required: true, schema: { type: 'string' } }],
          responses: { 200: { description: 'PNG', content: { 'image/png': {} } }, 404: errorResponse('No frame of that camera yet') },
        },
      },
      '/healthz': { get: { summary: 'Alive', security: [], responses: { 200: { description: 'ok' } } } },
      '/readyz': { get: { summary: 'Model loaded; broker reachable where one is configured', responses: { 200: { description: 'ready' }, 503: { description: 'not ready (JSON says what)' } } } },
      '/metrics': { get: { summary: 'Prometheus text format', responses: { 200: { description: 'text/plain; version=0.0.4' } } } },
      '/openapi.json': { get: { summary: 'This document', responses: { 200: { description: 'OpenAPI 3.1' } } } },
    },
  };
}
