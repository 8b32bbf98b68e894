package awsq

import (
	"errors"

	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// goneCodes are the errors by which SQS and SNS say that the queue or
// topic a call names does not exist: deleted under a running transport (by
// an administrator, another service's RemoveGroup, or an emulator that
// restarted empty), while the transport still has its URL or ARN. The
// AWS.* codes are the query protocol's, which goaws and older endpoints
// send.
var goneCodes = map[string]bool{
	"QueueDoesNotExist": true, "AWS.SimpleQueueService.NonExistentQueue": true, // SQS
	"NotFound": true, "NotFoundException": true, "AWS.SimpleNotificationService.NonExistentTopic": true, // SNS
}

// Gone reports whether err is SQS or SNS saying the queue or topic the
// call named does not exist. The transports then forget what they knew of
// it and look it up (or create it) again, instead of failing on a stale
// URL or ARN until they are reopened.
func Gone(err error) bool {
	var api smithy.APIError
	return errors.As(err, &api) && goneCodes[api.ErrorCode()]
}

// Transient reports whether err is a call that got no answer from SQS or
// SNS (the connection refused, reset or cut before a response), after the
// AWS SDK's own retries, or the SDK's client-side retry quota, which runs
// out after many such failures in a row. A publish is then sent again
// until its deadline, as on every broker that is unreachable for a while:
// the endpoint may be back by then. Any answer the service gave is not
// transient here: the SDK has retried those it should.
func Transient(err error) bool {
	var send *smithyhttp.RequestSendError
	var quota ratelimit.QuotaExceededError
	return errors.As(err, &send) || errors.As(err, &quota)
}
