// Route config of ip-restriction (Apache APISIX's ip-restriction).
import { SENT_TO_CLIENT, type JsonSchema } from 'gatehouse-gateway/sdk';

export interface IpRestrictionConfig {
  /** Only these IPs / CIDRs may pass (exclusive with blacklist). */
  readonly whitelist?: readonly string[];
  /** These IPs / CIDRs are refused (exclusive with whitelist). */
  readonly blacklist?: readonly string[];
  /** Sent as `{"message": ...}`; default "Your IP address is not allowed". */
  readonly message: string;
  /** Status of the refusal: 403 (default) or 404. */
  readonly response_code: 403 | 404;
}

/**
 * The shape of an IPv4/IPv6 address with an optional prefix length; `create` then checks that it
 * really is one (node:net) and that the prefix fits the family.
 */
const ADDRESS_SHAPE = '^[0-9A-Fa-f:.]+(/[0-9]{1,3})?$';
const addressList: JsonSchema = { type: 'array', minItems: 1, items: { type: 'string', pattern: ADDRESS_SHAPE } };

export const schema: JsonSchema = {
  type: 'object',
  properties: {
    whitelist: addressList,
    blacklist: addressList,
    // the refusal's body: sent to the refused client (SENT_TO_CLIENT)
    message: { type: 'string', minLength: 1, maxLength: 1024, default: 'Your IP address is not allowed', [SENT_TO_CLIENT]: true },
    response_code: { type: 'integer', enum: [403, 404], default: 403 },
  },
  // as APISIX: exactly one of the two lists
  oneOf: [{ required: ['whitelist'] }, { required: ['blacklist'] }],
  additionalProperties: false,
};
