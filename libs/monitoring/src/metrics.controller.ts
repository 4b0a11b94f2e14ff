import { Controller, Get, Res, SetMetadata, UseGuards } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiSecurity, ApiTags, ApiUnauthorizedResponse } from '@nestjs/swagger';
import { PrometheusController } from '@willsoto/nestjs-prometheus';
import type { Response } from 'express';
import { METRICS_ENDPOINT, MetricsAccessGuard } from './metrics-access.guard';

/** `GET /monitoring/metrics`: the one registry in Prometheus text format (path set by the module). */
@ApiTags('monitoring')
@SetMetadata(METRICS_ENDPOINT, true)
@Controller()
export class MetricsController extends PrometheusController {
  @Get()
  @UseGuards(MetricsAccessGuard)
  @ApiOperation({ summary: 'Prometheus metrics (text exposition format 0.0.4)' })
  @ApiSecurity('metrics-token')
  @ApiSecurity('metrics-admin-token')
  @ApiOkResponse({
    description: 'Every metric of this replica.',
    content: { 'text/plain; version=0.0.4': { schema: { type: 'string' } } },
  })
  @ApiUnauthorizedResponse({
    description: 'No valid metrics token (code unauthorized); the platform error envelope.',
    // The envelope is a platform-wide contract; the app registers the ErrorEnvelope schema.
    content: { 'application/json': { schema: { $ref: '#/components/schemas/ErrorEnvelope' } } },
  })
  override index(@Res({ passthrough: true }) response: Response): Promise<string> {
    return super.index(response);
  }
}
