// The session store of a SessionPool: a Redis Cluster, its credentials and TLS. Part of the
// SessionPool schema (../session-pool.ts).
import Type, { type Static } from 'typebox';
import { ObjectName, PORT_SUFFIX_PATTERN, SecretKey, StringEnum } from '../meta.ts';

export const DURABILITY_LEVELS = ['leader', 'replica'] as const;

/** `host:port`, the host a DNS name, an IPv4 address or a bracketed IPv6 address. */
const ENDPOINT_PATTERN = '^(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?):[0-9]{1,5}$';

export const SecretKeyRefSchema = Type.Object(
  {
    name: ObjectName('Name of the Secret, in the pool namespace.'),
    key: SecretKey('Key in the Secret that holds the PEM-encoded CA certificate.', { default: 'ca.crt' }),
  },
  { description: 'A key of a Secret in the pool namespace.' },
);

export const StoreSchema = Type.Object(
  {
    endpoints: Type.Array(
      Type.String({
        description: 'A node of the Redis Cluster as host:port, the port 1 to 65535.',
        maxLength: 261,
        pattern: ENDPOINT_PATTERN,
        'x-kubernetes-validations': [
          { rule: `self.matches('${PORT_SUFFIX_PATTERN}')`, message: 'the port of a store endpoint must be 1 to 65535' },
        ],
      }),
      {
        description: 'Seed nodes of the Redis Cluster, as host:port. One is enough; the client discovers the others.',
        minItems: 1,
        maxItems: 64,
        'x-kubernetes-list-type': 'set',
      },
    ),
    credentialsSecretRef: Type.Optional(
      Type.Object(
        {
          name: ObjectName('Name of the Secret, in the pool namespace.'),
          usernameKey: Type.Optional(
            SecretKey(
              'Key in the Secret that holds the Redis ACL user name. Unset: authenticate with the password only (the default user).',
            ),
          ),
          passwordKey: SecretKey('Key in the Secret that holds the password.', { default: 'password' }),
        },
        { description: 'Secret with the Redis credentials. Credentials are only ever read from a Secret. Unset: no authentication.' },
      ),
    ),
    tls: Type.Object(
      {
        enabled: Type.Boolean({ description: 'Connect to Redis over TLS.', default: false }),
        caSecretRef: Type.Optional(SecretKeyRefSchema),
        serverName: Type.Optional(
          Type.String({
            description:
              "DNS name every node's certificate is checked against (and sent as SNI). A Redis Cluster announces its nodes by IP, so without it each node's certificate must hold the IP it is reached at. Unset: the address each node is reached at.",
            minLength: 1,
            maxLength: 253,
            pattern: '^[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?(\\.[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?)*$',
            'x-kubernetes-validations': [
              { rule: "!self.matches('^[0-9.]+$')", message: 'tls.serverName is a DNS name, not an IP address' },
            ],
          }),
        ),
        clientCertSecretRef: Type.Optional(
          Type.Object(
            {
              name: ObjectName('Name of the Secret, in the pool namespace (a kubernetes.io/tls Secret fits).'),
              certKey: Type.String({
                description: 'Key in the Secret that holds the PEM client certificate.',
                minLength: 1,
                maxLength: 253,
                default: 'tls.crt',
              }),
              keyKey: Type.String({
                description: 'Key in the Secret that holds the PEM private key of the client certificate.',
                minLength: 1,
                maxLength: 253,
                default: 'tls.key',
              }),
            },
            { description: 'Client certificate and key for mutual TLS (Redis tls-auth-clients). Unset: no client certificate.' },
          ),
        ),
        insecureSkipVerify: Type.Boolean({
          description:
            'Do not verify the server certificate (the connection is encrypted but anyone on the path can read it). For testing only: the pool reports a Warning Event (reason InsecureTLS) on every reconcile.',
          default: false,
        }),
      },
      {
        description: 'TLS towards Redis.',
        default: {},
        'x-kubernetes-validations': [
          {
            rule: '!has(self.caSecretRef) || self.enabled',
            message: 'tls.caSecretRef requires tls.enabled: true',
            fieldPath: '.caSecretRef',
          },
          {
            rule: '!has(self.serverName) || self.enabled',
            message: 'tls.serverName requires tls.enabled: true',
            fieldPath: '.serverName',
          },
          {
            rule: '!has(self.clientCertSecretRef) || self.enabled',
            message: 'tls.clientCertSecretRef requires tls.enabled: true',
            fieldPath: '.clientCertSecretRef',
          },
          {
            rule: '!self.insecureSkipVerify || self.enabled',
            message: 'tls.insecureSkipVerify requires tls.enabled: true',
            fieldPath: '.insecureSkipVerify',
          },
        ],
      },
    ),
    keyPrefix: Type.String({
      description:
        "Prefix of every Redis key of this pool (the pool name follows it). Immutable: changing it would orphan the pool's sessions.",
      minLength: 1,
      maxLength: 64,
      pattern: '^[A-Za-z0-9][A-Za-z0-9_.:-]*$',
      default: 'spo',
      'x-kubernetes-validations': [
        { rule: 'self == oldSelf', message: "store.keyPrefix is immutable: changing it would orphan the pool's sessions" },
      ],
    }),
    durability: StringEnum(['leader', 'replica'], {
      description:
        'When a write is acknowledged: leader = once the master has it; replica = once at least one replica also has it (WAIT), so it survives a failover.',
      default: 'leader',
    }),
    allowDegradedMode: Type.Boolean({
      description:
        'Let workers stay ready and queue writes while the store is unreachable. When false, a worker that cannot reach the store reports not ready.',
      default: false,
    }),
  },
  { description: 'The session store: a Redis Cluster.' },
);
export type StoreSpec = Static<typeof StoreSchema>;
