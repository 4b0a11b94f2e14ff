/** The root pino logger (JSON lines on stdout); inject it where a log line carries its own request id. */
export const ROOT_LOGGER = Symbol('ROOT_LOGGER');
