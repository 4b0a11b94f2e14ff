import { Controller, Get, Res, UseGuards } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiProduces, ApiSecurity, ApiTags } from '@nestjs/swagger';
import { PrometheusController } from '@willsoto/nestjs-prometheus';
import type { Response } from 'express';
import { MetricsAccessGuard } from './metrics-access.guard';

/** `GET /monitoring/metrics`: the one registry in Prometheus text format (path set by the module). */
@ApiTags('monitoring')
@Controller()
export class MetricsController extends PrometheusController {
  @Get()
  @UseGuards(MetricsAccessGuard)
  @ApiOperation({ summary: 'Prometheus metrics (text exposition format 0.0.4)' })
  @ApiProduces('text/plain; version=0.0.4')
  @ApiSecurity('metrics-token')
  @ApiOkResponse({ description: 'Every metric of this replica.', schema: { type: 'string' } })
  override index(@Res({ passthrough: true }) response: Response): Promise<string> {
    return super.index(response);
  }
}
