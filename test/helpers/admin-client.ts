// One Admin API call for tests that check every answer afterwards (the admin-paths-* and
// admin-subpatch redaction scans): status, text and parsed JSON, each answer recorded.
import { request, type Dispatcher } from 'undici';

export interface Reply {
  status: number;
  text: string;
  json: any;
}

/** Where answers are recorded: `call` is "METHOD path -> status". */
export type AnswerLog = Array<{ call: string; text: string }>;

/**
 * `body` is sent as JSON, `raw` as is; `key` is the X-API-KEY (`null`: none sent).
 * @param answers every answer is appended here
 */
export async function adminCall(answers: AnswerLog, base: string, method: string, path: string, o: { body?: unknown; raw?: string; key: string | null }): Promise<Reply> {
  const headers: Record<string, string> = {};
  if (o.key !== null) headers['x-api-key'] = o.key;
  const body = o.raw ?? (o.body === undefined ? undefined : JSON.stringify(o.body));
  if (body !== undefined) headers['content-type'] = 'application/json';
  const r = await request(`${base}${path}`, { method: method as Dispatcher.HttpMethod, headers, body });
  const text = await r.body.text();
  answers.push({ call: `${method} ${path} -> ${r.statusCode}`, text });
  let json: any;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: r.statusCode, text, json };
}
