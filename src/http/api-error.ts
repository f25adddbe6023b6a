import type { FastifyReply } from 'fastify';
import { SluiceError, errorMessage } from '../util/errors.js';

/** `{"error": {"code", "message"}}` with a fitting status (SPEC §6). */
export function apiError(reply: FastifyReply, status: number, code: string, message: string): FastifyReply {
  return reply.code(status).send({ error: { code, message } });
}

/** A thrown error as an API error: SluiceError codes map to statuses, anything else is a 500. */
export function sendError(reply: FastifyReply, err: unknown, statuses: Readonly<Record<string, number>>, fallbackCode: string): FastifyReply {
  if (err instanceof SluiceError) return apiError(reply, statuses[err.code] ?? 400, err.code, err.message);
  return apiError(reply, 500, fallbackCode, errorMessage(err));
}
