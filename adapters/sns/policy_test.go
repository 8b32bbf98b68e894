package sns

import (
	"encoding/json"
	"testing"
)

func TestQueuePolicyAdmitsOnlyTheTopic(t *testing.T) {
	const queue, topic = "arn:aws:sqs:eu-west-1:123456789012:orders-billing", "arn:aws:sns:eu-west-1:123456789012:orders"
	var p struct {
		Statement []struct {
			Effect    string
			Principal map[string]string
			Action    string
			Resource  string
			Condition map[string]map[string]string
		}
	}
	if err := json.Unmarshal([]byte(queuePolicy(queue, topic)), &p); err != nil {
		t.Fatal(err)
	}
	if len(p.Statement) != 1 {
		t.Fatalf("want one statement, got %d", len(p.Statement))
	}
	s := p.Statement[0]
	if s.Effect != "Allow" || s.Principal["Service"] != "sns.amazonaws.com" || s.Action != "sqs:SendMessage" || s.Resource != queue {
		t.Fatalf("the policy must let SNS send to this queue: %+v", s)
	}
	if s.Condition["ArnEquals"]["aws:SourceArn"] != topic {
		t.Fatalf("the policy must admit only the subscribed topic, got condition %v", s.Condition)
	}
}
