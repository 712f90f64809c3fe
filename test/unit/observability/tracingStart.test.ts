import { expect } from 'chai';
import { tracingDecision, TracingSetupError } from '../../../src/observability/tracingStart';

const off = { enabled: false };
const on = { enabled: true };

describe('whether a process traces', () => {
  it('is off by default, with no OTLP endpoint and otel.enabled false', () => {
    expect(tracingDecision(off, {}).enabled).to.equal(false);
    expect(tracingDecision(off, { OTEL_SERVICE_NAME: 'x', OTEL_TRACES_SAMPLER: 'always_on' }).enabled).to.equal(false);
  });

  it('is on with otel.enabled, or with an OTLP endpoint in the standard variables', () => {
    expect(tracingDecision(on, {})).to.deep.equal({ enabled: true, exporter: 'otlp' });
    expect(tracingDecision(off, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' })).to.deep.equal({ enabled: true, exporter: 'otlp' });
    expect(tracingDecision(off, { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://collector:4318/v1/traces' }).enabled).to.equal(true);
  });

  it('is off whatever else says with OTEL_SDK_DISABLED=true (any case) or OTEL_TRACES_EXPORTER=none', () => {
    expect(tracingDecision(on, { OTEL_SDK_DISABLED: 'TRUE' }).enabled).to.equal(false);
    expect(tracingDecision(on, { OTEL_SDK_DISABLED: 'true', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' }).enabled).to.equal(false);
    expect(tracingDecision(on, { OTEL_TRACES_EXPORTER: 'none' }).enabled).to.equal(false);
    // Only "true" disables, as the specification says: anything else is the default, enabled.
    expect(tracingDecision(on, { OTEL_SDK_DISABLED: 'false' }).enabled).to.equal(true);
    expect(tracingDecision(on, { OTEL_SDK_DISABLED: '1' }).enabled).to.equal(true);
  });

  it('exports to the console when OTEL_TRACES_EXPORTER says so', () => {
    expect(tracingDecision(on, { OTEL_TRACES_EXPORTER: 'console' })).to.deep.equal({ enabled: true, exporter: 'console' });
    expect(tracingDecision(on, { OTEL_TRACES_EXPORTER: ' OTLP ' })).to.deep.equal({ enabled: true, exporter: 'otlp' });
  });

  it('refuses, naming the variable, an exporter or a protocol Warren does not have', () => {
    expect(() => tracingDecision(on, { OTEL_TRACES_EXPORTER: 'zipkin' }))
      .to.throw(TracingSetupError)
      .with.property('message', 'OTEL_TRACES_EXPORTER: zipkin is not an exporter Warren has (otlp, console or none)');
    expect(() => tracingDecision(on, { OTEL_TRACES_EXPORTER: 'otlp,console' })).to.throw(TracingSetupError, /name one exporter/);
    expect(() => tracingDecision(on, { OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' })).to.throw(
      TracingSetupError,
      /^OTEL_EXPORTER_OTLP_PROTOCOL: grpc is not spoken here/,
    );
    expect(() => tracingDecision(on, { OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'grpc' })).to.throw(
      TracingSetupError,
      /^OTEL_EXPORTER_OTLP_TRACES_PROTOCOL/,
    );
    expect(tracingDecision(on, { OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf' }).enabled).to.equal(true);
    // Not asked to trace: a setting for the exporter is nobody's mistake yet.
    expect(tracingDecision(off, { OTEL_TRACES_EXPORTER: 'zipkin' }).enabled).to.equal(false);
  });
});
