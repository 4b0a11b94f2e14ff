import { Body, Controller, Get, Module, Param, Post, Query } from '@nestjs/common';
import { PinoLogger } from 'nestjs-pino';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { Public } from '../../src/auth/auth.decorators';

const EchoSchema = z.strictObject({
  name: z.string().min(1).max(50),
  count: z.number().int().min(0).max(10),
  options: z.strictObject({ mode: z.enum(['clip', 'reject']).default('clip') }).optional(),
});

const SleepQuery = z.object({ ms: z.coerce.number().int().min(0).max(60_000) });

/**
 * Test-only routes: a validated body, a route parameter, an unexpected exception and a slow request.
 * Mounted through `createApp(..., { imports })`, never by the real app.
 */
@Public()
@Controller('probe')
export class ProbeController {
  constructor(private readonly logger: PinoLogger) {}

  @Post('echo')
  echo(@Body({ schema: EchoSchema }) body: z.infer<typeof EchoSchema>): z.infer<typeof EchoSchema> {
    return body;
  }

  @Get('items/:id')
  item(@Param('id') id: string): { id: string } {
    return { id };
  }

  @Get('boom')
  boom(): never {
    throw new Error('exploded at /srv/secret/internal/path.ts:42');
  }

  @Get('slow')
  async slow(
    @Query({ schema: SleepQuery }) query: z.infer<typeof SleepQuery>,
  ): Promise<{ slept_ms: number }> {
    this.logger.info({ ms: query.ms }, 'slow request started');
    await sleep(query.ms);
    return { slept_ms: query.ms };
  }
}

@Module({ controllers: [ProbeController] })
export class ProbeModule {}
